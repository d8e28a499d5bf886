# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""A ``Recognizer2D`` for backbones that see several frames per segment and
may hand auxiliary training features to the head."""
from typing import Any, Dict, Optional

import torch
from mmaction.models.recognizers import Recognizer2D
from mmaction.registry import MODELS
from mmaction.utils import SampleList

from ..utils.aux_outputs import split_aux_outputs


@MODELS.register_module()
class SegmentRecognizer2D(Recognizer2D):
    """MMAction2's :class:`Recognizer2D` with two backbone contracts added.

    Feature extraction itself is upstream's ``Recognizer2D.extract_feat``
    (backbone, neck, fully-convolutional test, head) for every stage; this
    class only shapes its input and takes auxiliary outputs off the
    backbone's output.

    1. **Frames per segment.** A backbone may declare an integer attribute
       ``frames_per_segment`` ``L`` (TDN: 5, the centre frame plus its
       neighbours for the RGB differences). A sample then holds
       ``V x T x L`` frames (``V`` views, ``T`` segments), the ``L`` frames
       of a segment consecutive (``SampleFrames(clip_len=L)``). They are
       stacked on channels, ``(N, V*T*L, C, H, W) -> (N, V*T, L*C, H, W)``,
       so the backbone receives ``(N*V*T, L*C, H, W)`` and upstream
       computes the consensus over ``num_segs = V*T`` segments. Backbones
       without the attribute behave exactly as in ``Recognizer2D``.
    2. **Auxiliary training outputs** (the declared channel of
       :mod:`mmaction_tdx.models.utils.aux_outputs`). A head may declare
       ``backbone_aux_outputs`` (names, e.g. ``('td_features',)`` for the
       Temporal Diversity loss). At build time the recognizer asks the
       backbone for them through ``backbone.request_aux_outputs(names)``;
       in training the backbone then returns ``(features, {name: value})``,
       a forward hook keeps the features on upstream's path and the values
       reach ``cls_head.loss`` as keyword arguments. In eval mode the
       backbone returns the plain features and computes no auxiliary ones
       (``mode='loss'`` then gives the head's losses without them, e.g. for
       validation-loss hooks).

    All other arguments are those of ``Recognizer2D``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._aux_outputs: Dict[str, Any] = {}
        aux_names = tuple(
            getattr(self.cls_head, 'backbone_aux_outputs', ()) or ())
        if aux_names:
            request = getattr(self.backbone, 'request_aux_outputs', None)
            if request is None:
                raise TypeError(
                    f'The head {type(self.cls_head).__name__} needs the '
                    f'backbone outputs {aux_names} (e.g. for `loss_td`), but '
                    f'the backbone {type(self.backbone).__name__} cannot '
                    'provide them. Remove that loss from `cls_head` or use a '
                    'backbone that supports it (e.g. ResNetTDRL).')
            request(aux_names)
            self.backbone.register_forward_hook(self._take_aux_outputs)

    def _take_aux_outputs(self, backbone, args, output):
        """Forward hook: keep the backbone's auxiliary outputs for the head
        and hand only the features on to upstream's ``extract_feat``."""
        feats, aux = split_aux_outputs(backbone, output)
        if not aux:
            return None
        self._aux_outputs.update(aux)
        return feats

    @property
    def frames_per_segment(self) -> int:
        return int(getattr(self.backbone, 'frames_per_segment', 1))

    def _check_frame_count(self, inputs: torch.Tensor) -> None:
        """Check that every sample holds whole clips (views) of
        ``num_segments x frames_per_segment`` frames.

        The backbone only sees the batch folded into ``(N * frames, ...)``,
        in which e.g. 2 samples of 4 frames pass for 1 sample of 8; here
        the frames of one sample are known.
        """
        frames = inputs.shape[1]
        per_segment = self.frames_per_segment
        name = type(self.backbone).__name__
        interval = ', frame_interval=1' if per_segment > 1 else ''
        segments = getattr(self.backbone, 'num_segments', None)
        if frames % per_segment != 0:
            raise ValueError(
                f'{name} takes {per_segment} consecutive frames per segment, '
                f'but a sample has {frames} frames, which is not a multiple '
                f'of {per_segment}. Sample with `SampleFrames(clip_len='
                f'{per_segment}{interval}, num_clips='
                f'{segments or "<num_segments>"})`.')
        if segments is None or frames % (segments * per_segment) == 0:
            return
        raise ValueError(
            f'{name} was built with num_segments={segments} and '
            f'{per_segment} frame(s) per segment, i.e. '
            f'{segments * per_segment} frames per clip, but a sample has '
            f'{frames} frames, which is not a whole number of clips. Sample '
            f'with `SampleFrames(clip_len={per_segment}{interval}, '
            f'num_clips={segments})` in every pipeline (for several test '
            f'views, num_clips a multiple of {segments}), or set '
            '`model.backbone.num_segments` to the number of clips sampled.')

    def extract_feat(self,
                     inputs: torch.Tensor,
                     stage: str = 'neck',
                     data_samples: Optional[SampleList] = None,
                     test_mode: bool = False) -> tuple:
        """Extract features; see :class:`Recognizer2D` for the stages.

        Args:
            inputs (Tensor): ``(N, V * T * L, C, H, W)`` with ``V`` views,
                ``T`` segments and ``L = backbone.frames_per_segment``.

        Returns:
            tuple: Features and the keyword arguments for ``loss`` /
            ``predict``, in which ``num_segs`` is ``V * T``; in training
            also the backbone's auxiliary outputs (e.g. ``td_features``).
        """
        self._check_frame_count(inputs)
        per_segment = self.frames_per_segment
        if per_segment > 1:
            inputs = inputs.reshape(inputs.shape[0],
                                    inputs.shape[1] // per_segment,
                                    per_segment * inputs.shape[2],
                                    *inputs.shape[3:])
        self._aux_outputs = {}
        feats, kwargs = super().extract_feat(
            inputs,
            stage=stage,
            data_samples=data_samples,
            test_mode=test_mode)
        # Dropped at once so that the graph they hold is not kept alive.
        aux, self._aux_outputs = self._aux_outputs, {}
        if not test_mode:
            kwargs.update(aux)
        return feats, kwargs
