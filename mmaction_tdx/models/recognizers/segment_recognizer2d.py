# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""A ``Recognizer2D`` for backbones that see several frames per segment and
may hand auxiliary training features to the head."""
from typing import Dict, Optional, Tuple

import torch
from mmaction.models.recognizers import Recognizer2D
from mmaction.registry import MODELS
from mmaction.utils import SampleList


@MODELS.register_module()
class SegmentRecognizer2D(Recognizer2D):
    """MMAction2's :class:`Recognizer2D` with two backbone contracts added.

    1. **Frames per segment.** A backbone may declare an integer attribute
       ``frames_per_segment`` (TDN: 5, the centre frame plus its neighbours
       for the RGB differences). Its input then holds
       ``views x num_segments x frames_per_segment`` frames per sample, but
       it returns one feature map per *segment*. The segment count handed to
       the head for consensus is therefore
       ``inputs.shape[1] // frames_per_segment``; stock ``Recognizer2D``
       would pass the frame count and average over the wrong axis.
       Backbones without the attribute behave exactly as in
       ``Recognizer2D``.
    2. **Auxiliary training outputs.** A head may declare
       ``backbone_aux_outputs`` (a tuple of names, e.g.
       ``('td_features',)`` for the Temporal Diversity loss). At build time
       the recognizer asks the backbone for them through
       ``backbone.request_aux_outputs(names)``; in training the backbone then
       returns ``(features, {name: value})`` and the values reach
       ``cls_head.loss`` as keyword arguments. In evaluation and inference
       the backbone returns the plain feature tensor, so the auxiliary
       features are neither computed nor kept.

    All other arguments are those of ``Recognizer2D``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
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

    @staticmethod
    def _split_aux(feats) -> Tuple[torch.Tensor, Dict]:
        if (isinstance(feats, tuple) and len(feats) == 2
                and isinstance(feats[1], dict)):
            return feats[0], feats[1]
        return feats, {}

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
            ``predict``, in which ``num_segs`` is ``V * T``.
        """
        self._check_frame_count(inputs)
        feats, kwargs = super().extract_feat(
            inputs,
            stage='backbone',
            data_samples=data_samples,
            test_mode=test_mode)
        feats, aux = self._split_aux(feats)
        num_segs = kwargs['num_segs'] // self.frames_per_segment
        kwargs['num_segs'] = num_segs
        if not test_mode:
            kwargs.update(aux)
        if stage == 'backbone':
            return feats, kwargs

        fcn_test = kwargs.get('fcn_test', False)
        if fcn_test and self.test_cfg is not None:
            num_segs = self.test_cfg.get(
                'num_segs', getattr(self.backbone, 'num_segments', num_segs))
        loss_aux = dict()
        if self.with_neck:
            feats = [
                each.reshape((-1, num_segs) +
                             each.shape[1:]).transpose(1, 2).contiguous()
                for each in feats
            ]
            feats, loss_aux = self.neck(feats, data_samples=data_samples)
            if not fcn_test:
                feats = feats.squeeze(2)
                kwargs['num_segs'] = 1
        elif fcn_test:
            feats = feats.reshape((-1, num_segs) +
                                  feats.shape[1:]).transpose(1,
                                                             2).contiguous()
        kwargs['loss_aux'] = loss_aux
        if stage == 'neck':
            return feats, kwargs
        if self.with_cls_head and stage == 'head':
            head_kwargs = {
                k: v
                for k, v in kwargs.items() if k not in aux
            }
            return self.cls_head(feats, **head_kwargs), kwargs
        return feats, kwargs
