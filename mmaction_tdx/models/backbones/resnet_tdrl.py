# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""ResNet with TDRL blocks (Weng et al., ECCV 2020, Sec. 3 and 4.2)."""
import copy
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmaction.registry import MODELS

from .temporal_resnet import TDBlockMixin, TemporalResNet


class TDRLBlock(TDBlockMixin, nn.Module):
    """A ResNet block whose residual branch starts with TDRL's temporal path.

    Residual branch: ``[PEM] -> TM -> ResConv`` (default, Fig. 2) or
    ``TM -> [PEM] -> ResConv`` (Table 6 "PEM A. TM"), where ResConv are
    the block's own convolutions (1x1-3x3-1x1 for ``Bottleneck``, 3x3-3x3
    for ``BasicBlock``); the identity/downsample branch is unchanged. The
    block takes over the submodules of the MMAction2 ResNet block it
    replaces under their own names (``conv1``, ``conv2``, ``conv3``,
    ``downsample``), so ResNet checkpoints load without renaming.

    Args:
        block (nn.Module): The ``BasicBlock`` or ``Bottleneck`` to extend.
        enhancement (nn.Module, optional): Channel enhancement (PEM or
            TEINet's MEM); ``None`` for none.
        temporal (nn.Module, optional): Temporal module (TM); ``None`` for
            none.
        enhancement_position (str): ``'before_tm'`` or ``'after_tm'``.
        td_position (str): Where the TD-loss features are taken:
            ``'after_tm'`` (Sec. 4.2), the TM output; ``'before_tm'``, the
            TM input.
        with_td_loss (bool): Whether this is a TDRL-B block (its TD
            features are returned when asked).

    Shape:
        ``(N*T, C_in, H, W) -> (N*T, C_out, H', W')``; TD features are
        ``(N*T, C_in, H, W)``.
    """

    def __init__(self,
                 block: nn.Module,
                 enhancement: Optional[nn.Module] = None,
                 temporal: Optional[nn.Module] = None,
                 enhancement_position: str = 'before_tm',
                 td_position: str = 'after_tm',
                 with_td_loss: bool = False) -> None:
        super().__init__()
        self.conv1 = block.conv1
        self.conv2 = block.conv2
        self.conv3 = getattr(block, 'conv3', None)
        self.downsample = block.downsample
        self.relu = block.relu
        self.with_cp = getattr(block, 'with_cp', False)
        self.enhancement = enhancement
        self.temporal = temporal
        self.enhancement_position = enhancement_position
        self.td_position = td_position
        self.with_td_loss = with_td_loss

    def temporal_path(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the input of ResConv and the TD-loss features.

        ``U = PEM(X)`` (Eq. 3), ``Z = TM(U)`` (Sec. 3.1) in the default
        order; each unit is called as a plain module, so forward hooks on
        ``enhancement`` / ``temporal`` see exactly the tensors used.

        Args:
            x (Tensor): ``(N*T, C_in, H, W)``.

        Returns:
            tuple[Tensor, Tensor]: Both ``(N*T, C_in, H, W)``.
        """
        if self.enhancement is not None and \
                self.enhancement_position == 'before_tm':
            x = self.enhancement(x)
        td_features = x
        if self.temporal is not None:
            x = self.temporal(x)
        if self.td_position == 'after_tm':
            td_features = x
        if self.enhancement is not None and \
                self.enhancement_position == 'after_tm':
            x = self.enhancement(x)
        return x, td_features

    def forward_td(self, x: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(N*T, C_in, H, W)`` -> the block before its ReLU and the TD
        features (checkpointing and ReLU: :class:`TDBlockMixin`)."""
        out, td_features = self.temporal_path(x)
        out = self.conv2(self.conv1(out))
        if self.conv3 is not None:
            out = self.conv3(out)
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity, td_features


@MODELS.register_module()
class ResNetTDRL(TemporalResNet):
    """ResNet backbone of TDRL (Temporal Distinct Representation Learning).

    Every block becomes a :class:`TDRLBlock`: PEM (Sec. 3.2) and a temporal
    module (TM) in front of the block's convolutions (Fig. 2, Sec. 4.2).
    TDRL-B blocks additionally hand their TD features (Sec. 3.3) to the
    head's ``TemporalDiversityLoss``: after
    ``request_aux_outputs(('td_features',))``, :meth:`forward_with_aux`
    returns ``(features, {'td_features': [z_1, ...]})``, one
    ``(N*T, C, H, W)`` tensor per TDRL-B block in network order;
    ``forward`` always returns the plain features (see
    :class:`~mmaction_tdx.models.backbones.temporal_resnet.TemporalResNet`).

    ``dict(type='ResNetTDRL', depth=50, num_segments=8)`` is the paper's
    model: PEM before TIM (TEINet's channel-wise temporal conv, kernel 3,
    shift-initialised) in all blocks, TD loss after TM in the last block of
    ``layer2``, ``layer3`` and ``layer4``. At 224x224 it costs 33.0
    GFLOPs for T = 8 and 66.1 for T = 16 (MMEngine's ``FlopAnalyzer``;
    Table 1: 33G / 66G) with 26.7 M backbone parameters (ResNet-50: 23.5 M;
    PEMs and TIMs add 3.2 M). The ablations of Tables 3-7 are
    options (the TD-loss ratio and ``lambda`` live in the head's
    ``loss_td``):

    * TSM baseline: ``temporal_module=dict(type='TemporalShift')``;
    * without PEM: ``enhancement_module=None``; "+MEM":
      ``enhancement_module=dict(type='MotionEnhancementModule')``;
    * Table 6: ``enhancement_position`` and ``td_position``;
    * TDRL-B positions: ``td_blocks``.

    Args:
        depth (int): ResNet depth, 18, 34, 50, 101 or 152.
        num_segments (int): ``T``, segments per video. Defaults to 8.
        temporal_module (dict, optional): Config of the TM, built with
            ``in_channels``/``num_segments`` filled in. ``None`` for no TM.
            Defaults to ``dict(type='ChannelwiseTemporalConv')``.
        enhancement_module (dict, optional): Config of the channel
            enhancement, likewise. ``None`` for none. Defaults to
            ``dict(type='ProgressiveEnhancementModule')``.
        enhancement_position (str): ``'before_tm'`` (default, Fig. 2) or
            ``'after_tm'``.
        td_position (str): ``'after_tm'`` (default, Sec. 4.2) or
            ``'before_tm'``.
        td_blocks (Sequence[Sequence[int]]): For each stage, the indices
            (negative ones count from the end) of its TDRL-B blocks.
            Defaults to ``((), (-1,), (-1,), (-1,))``.
        **kwargs: Arguments of MMAction2's ``ResNet``.

    Shape:
        ``(N*T, 3, H, W) -> (N*T, C_out, H/32, W/32)``.
    """

    positions = ('before_tm', 'after_tm')

    def __init__(self,
                 depth: int,
                 num_segments: int = 8,
                 temporal_module: Optional[dict] = dict(
                     type='ChannelwiseTemporalConv'),
                 enhancement_module: Optional[dict] = dict(
                     type='ProgressiveEnhancementModule'),
                 enhancement_position: str = 'before_tm',
                 td_position: str = 'after_tm',
                 td_blocks: Sequence[Sequence[int]] = ((), (-1, ), (-1, ),
                                                      (-1, )),
                 **kwargs) -> None:
        for value, arg in ((enhancement_position, 'enhancement_position'),
                           (td_position, 'td_position')):
            if value not in self.positions:
                raise ValueError(f'ResNetTDRL: `{arg}` must be one of '
                                 f'{self.positions}, got {value!r}.')
        super().__init__(depth, num_segments, **kwargs)
        self.temporal_module = copy.deepcopy(temporal_module)
        self.enhancement_module = copy.deepcopy(enhancement_module)
        self.enhancement_position = enhancement_position
        self.td_position = td_position
        self.td_blocks = self._resolve_td_blocks(td_blocks)
        for stage, layer_name in enumerate(self.res_layers):
            res_layer = getattr(self, layer_name)
            for index, block in enumerate(res_layer):
                channels = block.conv1.in_channels
                res_layer[index] = TDRLBlock(
                    block,
                    enhancement=self._build_module(enhancement_module,
                                                   channels),
                    temporal=self._build_module(temporal_module, channels),
                    enhancement_position=enhancement_position,
                    td_position=td_position,
                    with_td_loss=index in self.td_blocks[stage])
