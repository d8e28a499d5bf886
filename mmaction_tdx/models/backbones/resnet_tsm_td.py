# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""MMAction2's TSM backbone with TDRL's Temporal Diversity loss.

What the temporal-ResNet base buys: the TD blocks, the request checks,
the input check and the stage loop come from
:class:`~mmaction_tdx.models.backbones.temporal_resnet.TemporalResNet`;
this file only says where a TSM block's TD features are.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmaction.models.backbones.resnet_tsm import ResNetTSM, TemporalShift
from mmaction.registry import MODELS

from .temporal_resnet import TemporalResNet


def temporal_shift_of(block: nn.Module) -> Optional[TemporalShift]:
    """The temporal shift of a ``ResNetTSM`` block: the block itself
    (``shift_place='block'``) or its ``conv1.conv`` (``'blockres'``),
    also inside a non-local wrapper; None if the block is not shifted."""
    block = getattr(block, 'block', block)
    if isinstance(block, TemporalShift):
        return block
    conv = getattr(getattr(block, 'conv1', None), 'conv', None)
    return conv if isinstance(conv, TemporalShift) else None


@MODELS.register_module()
class ResNetTSMTD(TemporalResNet, ResNetTSM):
    """``ResNetTSM`` (Lin et al., ICCV 2019) whose chosen blocks hand their
    temporally shifted input to the head's ``TemporalDiversityLoss``.

    The network, its parameter names and its ``init_weights`` are
    MMAction2's ``ResNetTSM`` (checkpoints load either way). The TD
    features of a block are its input after the temporal shift, i.e. the
    tensor the shifted convolution receives (the TSM baseline of TDRL,
    Table 4, with the TD loss "after TM" as in Sec. 4.2). The shift has no
    parameters, so it is applied once more to the block's input for the
    TD features instead of changing upstream's block.

    Args:
        depth (int): ResNet depth.
        num_segments (int): ``T``, segments per video. Defaults to 8.
        td_blocks (Sequence[Sequence[int]]): For each of the 4 stages, the
            indices (negative ones count from the end) of the blocks whose
            shifted input is a TD feature; they must be shifted. Defaults
            to ``((), (-1,), (-1,), (-1,))`` (TDRL's positions).
        **kwargs: Arguments of MMAction2's ``ResNetTSM`` (``shift_div``,
            ``shift_place``, ``non_local``, ``pretrained2d``, ...).
            ``temporal_pool=True`` is not supported with ``td_blocks``.

    Shape:
        ``(N*T, 3, H, W) -> (N*T, C_out, H/32, W/32)``.
    """

    resnet_takes_num_segments = True

    def __init__(self,
                 depth: int,
                 num_segments: int = 8,
                 td_blocks: Sequence[Sequence[int]] = ((), (-1, ), (-1, ),
                                                      (-1, )),
                 **kwargs) -> None:
        super().__init__(depth, num_segments, **kwargs)
        self.td_blocks = self._resolve_td_blocks(td_blocks)

    def _check_td_stage(self, stage: int, indices: List[int]) -> None:
        """TD features are a shifted block's shifted input."""
        layer = getattr(self, f'layer{stage + 1}')
        if self.temporal_pool or any(
                temporal_shift_of(layer[i]) is None for i in indices):
            raise ValueError(
                f'{type(self).__name__}: `td_blocks[{stage}]` picks blocks '
                f'{indices} of layer{stage + 1}, which have no temporal '
                'shift whose output could be the TD features (is_shift='
                f'{self.is_shift}, shift_place={self.shift_place!r}, '
                f'temporal_pool={self.temporal_pool}; for ResNet-101 and '
                'deeper, blockres shifts every other block). Pick shifted '
                'blocks, or set is_shift=True and temporal_pool=False.')

    def _forward_td_block(self, block: nn.Module, x: torch.Tensor
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Upstream's block, and its input after the shift."""
        shift = temporal_shift_of(block)
        return block(x), shift.shift(x, shift.num_segments, shift.shift_div)
