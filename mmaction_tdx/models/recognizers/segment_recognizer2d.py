# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""A ``Recognizer2D`` for backbones that see several frames per segment and
may hand auxiliary training features to the head."""
from typing import Optional

import torch
from mmaction.models.recognizers import Recognizer2D
from mmaction.registry import MODELS
from mmaction.utils import SampleList


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
    2. **Auxiliary training outputs** (the declared path of
       :mod:`mmaction_tdx.models.utils.aux_outputs`). A head may declare
       ``backbone_aux_outputs`` (names, e.g. ``('td_features',)`` for the
       Temporal Diversity loss). At build time the recognizer asks the
       backbone for them through ``backbone.request_aux_outputs(names)``
       (which refuses what it cannot provide). In training it then calls
       ``backbone.forward_with_aux`` instead of ``backbone(x)`` and hands
       the values to ``cls_head.loss`` as keyword arguments; no hook, no
       state between calls. The backbone's ``forward`` always returns the
       plain features. In eval mode (and for ``predict``/``tensor``
       outside training) no auxiliary output is computed (``mode='loss'``
       then gives the head's losses without them, e.g. for
       validation-loss hooks).

    All other arguments are those of ``Recognizer2D``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: Names of the backbone outputs the head's loss needs (fixed).
        self.aux_output_names = tuple(
            getattr(self.cls_head, 'backbone_aux_outputs', ()) or ())
        if self.aux_output_names:
            if not callable(getattr(self.backbone, 'forward_with_aux',
                                    None)):
                raise TypeError(
                    f'The head {type(self.cls_head).__name__} needs the '
                    f'backbone outputs {self.aux_output_names} (e.g. for '
                    f'`loss_td`), but the backbone '
                    f'{type(self.backbone).__name__} cannot provide them. '
                    'Remove that loss from `cls_head` or use a backbone that '
                    'supports it (e.g. ResNetTDRL).')
            self.backbone.request_aux_outputs(self.aux_output_names)
        # Per-view heads learn the segments per view from the backbone.
        bind = getattr(self.cls_head, 'bind_backbone', None)
        if bind is not None:
            bind(self.backbone)

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
        if test_mode or not self.aux_output_names or \
                not self.backbone.training:
            return super().extract_feat(
                inputs,
                stage=stage,
                data_samples=data_samples,
                test_mode=test_mode)
        return self._extract_feat_with_aux(inputs, stage, data_samples)

    def _extract_feat_with_aux(self, inputs: torch.Tensor, stage: str,
                               data_samples: Optional[SampleList]) -> tuple:
        """``Recognizer2D.extract_feat`` in training (no fully-convolutional
        test, an MMAction2 backbone) with the backbone called through
        ``forward_with_aux``; its outputs join the keyword arguments."""
        num_segs = inputs.shape[1]
        x, aux = self.backbone.forward_with_aux(inputs.flatten(0, 1))
        kwargs = dict(num_segs=num_segs)
        if stage != 'backbone':
            loss_aux = dict()
            if self.with_neck:
                x = [
                    each.reshape((-1, num_segs) +
                                 each.shape[1:]).transpose(1, 2).contiguous()
                    for each in x
                ]
                x, loss_aux = self.neck(x, data_samples=data_samples)
                x = x.squeeze(2)
                kwargs['num_segs'] = 1
            kwargs['loss_aux'] = loss_aux
            if self.with_cls_head and stage == 'head':
                x = self.cls_head(x, **kwargs)
        kwargs.update(aux)
        return x, kwargs
