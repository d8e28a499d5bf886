# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TSN head with TDRL's Temporal Diversity loss (ECCV 2020, Eq. 2, 7)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmaction.registry import MODELS
from mmaction.utils import ConfigType, SampleList

from .view_consensus import ViewConsensusTSNHead


@MODELS.register_module()
class TSNTDHead(ViewConsensusTSNHead):
    """MMAction2's :class:`TSNHead` plus the Temporal Diversity loss,
    scoring every test view on its own.

    The consensus is :class:`ViewConsensusTSNHead`'s: with ``V`` test views
    (``twice_sample``, ``ThreeCrop``...) each view of ``T`` segments gets
    its own score and ``average_clips`` fuses them (TDRL Sec. 4.2: the
    views' scores are averaged); with one view it is ``TSNHead``.

    The training loss is ``loss_cls + loss_td`` (Eq. 2), where
    ``loss_td = sum_b loss_td(z_b)`` over the TD features ``z_b``,
    ``(N*T, C_b, H_b, W_b)``, of the backbone's TDRL-B blocks, each term
    weighted by ``loss_td``'s ``loss_weight`` (the paper's ``lambda``).
    Both appear in the loss dict, and so in the training log.

    With ``loss_td`` the head declares
    ``backbone_aux_outputs = ('td_features',)``, so ``SegmentRecognizer2D``
    asks the backbone (e.g. ``ResNetTDRL``) for those features in training
    (through its ``forward_with_aux``) and passes them to :meth:`loss`.
    Without ``loss_td`` it is exactly a ``TSNHead`` scoring per view.

    In eval mode the backbone computes no TD features (they exist only to
    regularise training), so ``mode='loss'`` on an eval-mode model (e.g.
    a validation-loss hook) returns ``loss_cls`` alone; ``loss_td`` is
    left out rather than reported as 0.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the backbone's output.
        loss_td (dict, optional): Config of the loss, e.g.
            ``dict(type='TemporalDiversityLoss', ratio=0.5,
            loss_weight=2e-4)``. If it has no ``num_segments``, the
            segments per video are taken from the recognizer's
            ``num_segs``, which is ``T`` for single-view training (set it
            explicitly to train on several views per sample).
        **kwargs: Arguments of :class:`ViewConsensusTSNHead`
            (``segments_per_view``, by default the backbone's
            ``num_segments``) and :class:`TSNHead`.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 loss_td: Optional[ConfigType] = None,
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        self.loss_td = MODELS.build(loss_td) if loss_td else None

    @property
    def backbone_aux_outputs(self) -> Tuple[str, ...]:
        """Backbone outputs :meth:`loss` needs in training."""
        return ('td_features', ) if self.loss_td is not None else ()

    def loss(self,
             feats: torch.Tensor,
             data_samples: SampleList,
             td_features: Optional[Sequence[torch.Tensor]] = None,
             **kwargs) -> Dict:
        """Classification loss and, with ``loss_td``, the TD loss.

        Args:
            feats (Tensor): Backbone features ``(N*T, C, H, W)``.
            data_samples (list[ActionDataSample]): The batch samples.
            td_features (list[Tensor], optional): TD features of the
                TDRL-B blocks, each ``(N*T, C_b, H_b, W_b)``.
            **kwargs: ``num_segs`` and the other keyword arguments of
                :meth:`TSNHead.forward`.
        """
        losses = super().loss(feats, data_samples, **kwargs)
        # Eval mode: no TD features by design (see the class docstring).
        if self.loss_td is not None and (self.training or td_features):
            losses['loss_td'] = self.loss_by_td_features(
                td_features, kwargs.get('num_segs'))
        return losses

    def loss_by_td_features(self, td_features: Optional[List[torch.Tensor]],
                            num_segs: Optional[int]) -> torch.Tensor:
        """Sum of the TD loss over the TDRL-B blocks' features."""
        if not td_features:
            raise ValueError(
                'TSNTDHead has `loss_td` but received no `td_features`. Use '
                '`SegmentRecognizer2D` with a backbone that provides them '
                '(e.g. ResNetTDRL with non-empty `td_blocks`), or remove '
                '`loss_td`.')
        num_segments = (None if getattr(self.loss_td, 'num_segments', None)
                        else num_segs)
        return sum(self.loss_td(z, num_segments=num_segments)
                   for z in td_features)
