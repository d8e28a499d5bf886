# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TSN head that scores every test view on its own (the TDN release's test
protocol)."""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmaction.models.heads import TSNHead
from mmaction.registry import MODELS
from mmaction.utils import SampleList


@MODELS.register_module()
class ViewConsensusTSNHead(TSNHead):
    """:class:`TSNHead` with the segment consensus taken per view.

    With ``V`` test views (clips x crops) of ``T`` segments each, the
    recognizer hands the head ``N*V*T`` feature maps and
    ``num_segs = V*T``. ``TSNHead`` averages the features of all ``V*T``
    segments before its classifier, so ``average_clips`` never sees more
    than one score per video. This head averages over the ``T`` segments of
    each view only, giving one score per view,

    ``s_v = W mean_{t in view v} pool(x_t) + b``, shape ``(N*V, K)``,

    and ``average_clips`` fuses the views:

    * ``'prob'``: ``mean_v softmax(s_v)``, the release's protocol
      (``pkl_to_results.py``: a softmax per clip and crop, then the mean);
    * ``'relu_score'``: ``mean_v max(s_v, 0)``, what the release sums for
      its 8+16 ensembles (``pkl_to_results.py --multi_segments``); fuse the
      members' dumps with ``tools/analysis/fuse_scores.py
      --release-logit-sum``;
    * ``'score'``: ``mean_v s_v``; ``None``: the ``(V, K)`` scores.

    With one view (``num_segs == T``) it computes what ``TSNHead`` does.

    The views must be contiguous blocks of ``T`` segments, which is how
    MMAction2 1.2.0 lays out ``twice_sample``, ``num_clips=k*T``,
    ``DenseSampleFrames``, ``ThreeCrop`` and ``TenCrop`` with
    ``FormatShape('NCHW')`` (see
    :mod:`mmaction_tdx.datasets.sampling_contract`).

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the backbone's output.
        segments_per_view (int, optional): ``T``, the backbone's
            ``num_segments``. None: taken from the backbone by
            :meth:`bind_backbone` (``SamplingCheckHook`` and
            ``init_video_recognizer`` call it); unbound, a sample is
            scored as one view.
        **kwargs: Arguments of :class:`TSNHead` (``average_clips``...).
    """

    # Read by the sampling contract: several test views are scored apart.
    scores_views = True

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 segments_per_view: Optional[int] = None,
                 average_clips: str = 'prob',
                 **kwargs) -> None:
        if average_clips not in ('prob', 'score', 'relu_score', None):
            raise ValueError(
                f'average_clips={average_clips!r} is not supported; use '
                "'prob' (the TDN release's test protocol), 'relu_score' "
                "(members of the release's 8+16 logit-sum ensembles), "
                "'score' or None.")
        if segments_per_view is not None and (
                not isinstance(segments_per_view, int)
                or segments_per_view < 1):
            raise ValueError('segments_per_view must be the backbone\'s '
                             f'num_segments (>= 1), got {segments_per_view}.')
        super().__init__(
            num_classes, in_channels, average_clips=average_clips, **kwargs)
        self.segments_per_view = segments_per_view

    def bind_backbone(self, backbone) -> None:
        """Take ``segments_per_view`` from ``backbone.num_segments`` if
        unset; refuse a value that disagrees with it."""
        segments = getattr(backbone, 'num_segments', None)
        if segments is None:
            return
        if self.segments_per_view is None:
            self.segments_per_view = int(segments)
        elif self.segments_per_view != segments:
            raise ValueError(
                f'{type(self).__name__} has segments_per_view='
                f'{self.segments_per_view} but the backbone '
                f'{type(backbone).__name__} reads num_segments={segments} '
                'per view. Set `model.cls_head.segments_per_view` to '
                f'{segments} (or leave it out: it is then taken from the '
                'backbone).')

    def forward(self, x: torch.Tensor, num_segs: int,
                **kwargs) -> torch.Tensor:
        """Scores of every view.

        Args:
            x (Tensor): Features ``(N*V*T, C, H, W)``, the ``T`` segments of
                a view consecutive (as the recognizer folds them).
            num_segs (int): ``V*T``.

        Returns:
            Tensor: ``(N*V, num_classes)``.
        """
        per_view = self.segments_per_view or num_segs
        if num_segs % per_view:
            raise ValueError(
                f'The head got {num_segs} segments per video, not a whole '
                f'number of views of segments_per_view='
                f'{per_view}. Set '
                '`model.cls_head.segments_per_view` to '
                '`model.backbone.num_segments`.')
        return super().forward(x, num_segs=per_view, **kwargs)

    def loss(self, feats: torch.Tensor, data_samples: SampleList,
             **kwargs) -> Dict:
        """Classification loss of single-view training samples."""
        num_segs = kwargs.get('num_segs')
        if self.segments_per_view is not None \
                and num_segs != self.segments_per_view:
            raise ValueError(
                f'ViewConsensusTSNHead trains on one view of '
                f'segments_per_view={self.segments_per_view} segments per '
                f'sample, but a sample has {num_segs}. Set '
                '`model.cls_head.segments_per_view` to '
                '`model.backbone.num_segments` (and sample one clip per '
                'training video).')
        return super().loss(feats, data_samples, **kwargs)

    def loss_by_feat(self, cls_scores: torch.Tensor,
                     data_samples: SampleList) -> Dict:
        """Upstream's loss on float32 scores: its top-k accuracy goes
        through numpy, which has no bfloat16, so bf16 mixed precision
        (``AmpOptimWrapper(dtype='bfloat16')``, CPU autocast) would stop
        at the first iteration."""
        return super().loss_by_feat(cls_scores.float(), data_samples)

    def average_clip(self, cls_scores: torch.Tensor,
                     num_segs: int = 1) -> torch.Tensor:
        """Fuse the ``num_segs`` view scores of each video.

        Args:
            cls_scores (Tensor): ``(N*V, K)`` view scores.
            num_segs (int): ``V``, views per video.
        """
        if self.average_clips != 'relu_score':
            return super().average_clip(cls_scores, num_segs=num_segs)
        views = cls_scores.view((-1, num_segs) + cls_scores.shape[1:])
        return F.relu(views).mean(dim=1)
