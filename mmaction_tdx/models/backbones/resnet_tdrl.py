# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""ResNet with TDRL blocks (Weng et al., ECCV 2020, Sec. 3 and 4.2)."""
import copy
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmaction.models.backbones.resnet import ResNet
from mmaction.registry import MODELS
from torch.utils import checkpoint as cp

from ..common.temporal_modules import check_segment_batch
from ..utils.aux_outputs import (
    TD_FEATURES,
    AuxOutputsMixin,
    returns_aux_outputs,
)
from .resnet_args import check_resnet_stage_args


class TDRLBlock(nn.Module):
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

    def forward(self, x: torch.Tensor, return_td: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """``(N*T, C_in, H, W)`` -> features, plus the TD features if
        ``return_td``."""

        def _inner_forward(x):
            out, td_features = self.temporal_path(x)
            out = self.conv2(self.conv1(out))
            if self.conv3 is not None:
                out = self.conv3(out)
            identity = x if self.downsample is None else self.downsample(x)
            return out + identity, td_features

        if self.with_cp and x.requires_grad:
            out, td_features = cp.checkpoint(
                _inner_forward, x, use_reentrant=False)
        else:
            out, td_features = _inner_forward(x)
        out = self.relu(out)
        return (out, td_features) if return_td else out


@MODELS.register_module()
class ResNetTDRL(AuxOutputsMixin, ResNet):
    """ResNet backbone of TDRL (Temporal Distinct Representation Learning).

    Every block becomes a :class:`TDRLBlock`: PEM (Sec. 3.2) and a temporal
    module (TM) in front of the block's convolutions (Fig. 2, Sec. 4.2).
    TDRL-B blocks additionally hand their TD features (Sec. 3.3) to the
    head's ``TemporalDiversityLoss``: in training mode, after
    ``request_aux_outputs(('td_features',))``, ``forward`` returns
    ``(features, {'td_features': [z_1, ...]})``, one ``(N*T, C, H, W)``
    tensor per TDRL-B block in network order. In eval mode, or when
    nothing was requested, it returns the plain features and keeps nothing.

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
    """

    frames_per_segment = 1
    supported_aux_outputs = (TD_FEATURES, )
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
        check_resnet_stage_args(
            type(self).__name__,
            num_stages=kwargs.get('num_stages', 4),
            out_indices=kwargs.get('out_indices', (3, )),
            frozen_stages=kwargs.get('frozen_stages', -1))
        super().__init__(depth, **kwargs)
        if not isinstance(num_segments, int) or num_segments < 1:
            raise ValueError('ResNetTDRL: `num_segments` must be a positive '
                             f'integer, got {num_segments!r}.')
        for value, arg in ((enhancement_position, 'enhancement_position'),
                           (td_position, 'td_position')):
            if value not in self.positions:
                raise ValueError(f'ResNetTDRL: `{arg}` must be one of '
                                 f'{self.positions}, got {value!r}.')
        self.num_segments = num_segments
        self.temporal_module = copy.deepcopy(temporal_module)
        self.enhancement_module = copy.deepcopy(enhancement_module)
        self.enhancement_position = enhancement_position
        self.td_position = td_position
        self.td_blocks = self._resolve_td_blocks(td_blocks)
        self._make_tdrl_blocks()

    def _resolve_td_blocks(self, td_blocks) -> Tuple[Tuple[int, ...], ...]:
        """Turn ``td_blocks`` into sorted non-negative indices per stage."""
        if len(td_blocks) != self.num_stages:
            raise ValueError(
                f'ResNetTDRL: `td_blocks` needs one entry (a tuple of block '
                f'indices) per stage, i.e. {self.num_stages}, got '
                f'{td_blocks!r}. Use e.g. ((), (-1,), (-1,), (-1,)).')
        resolved = []
        for stage, (indices, num_blocks) in enumerate(
                zip(td_blocks, self.stage_blocks)):
            stage_indices = set()
            for index in indices:
                if not isinstance(index, int) or \
                        not -num_blocks <= index < num_blocks:
                    raise ValueError(
                        f'ResNetTDRL: `td_blocks[{stage}]` holds {index!r}, '
                        f'but layer{stage + 1} of ResNet-{self.depth} has '
                        f'{num_blocks} blocks; use indices in '
                        f'[{-num_blocks}, {num_blocks - 1}].')
                stage_indices.add(index % num_blocks)
            resolved.append(tuple(sorted(stage_indices)))
        return tuple(resolved)

    def _build_module(self, cfg: Optional[dict],
                      in_channels: int) -> Optional[nn.Module]:
        if cfg is None:
            return None
        cfg = copy.deepcopy(cfg)
        cfg.setdefault('in_channels', in_channels)
        cfg.setdefault('num_segments', self.num_segments)
        return MODELS.build(cfg)

    def _make_tdrl_blocks(self) -> None:
        for stage, layer_name in enumerate(self.res_layers):
            res_layer = getattr(self, layer_name)
            for index, block in enumerate(res_layer):
                in_channels = block.conv1.in_channels
                res_layer[index] = TDRLBlock(
                    block,
                    enhancement=self._build_module(self.enhancement_module,
                                                   in_channels),
                    temporal=self._build_module(self.temporal_module,
                                                in_channels),
                    enhancement_position=self.enhancement_position,
                    td_position=self.td_position,
                    with_td_loss=index in self.td_blocks[stage])

    def check_aux_request(self, names: Tuple[str, ...]) -> None:
        """Reject TD features this backbone cannot provide (see
        :class:`~mmaction_tdx.models.utils.aux_outputs.AuxOutputsMixin`).
        """
        if TD_FEATURES in names and not any(self.td_blocks):
            raise ValueError(
                'The head asks for TD features (it has `loss_td`), but '
                'ResNetTDRL has no TDRL-B block (`td_blocks` is empty). Set '
                '`td_blocks`, e.g. ((), (-1,), (-1,), (-1,)), or remove '
                '`loss_td` from the head.')
        if TD_FEATURES in names and self.num_segments < 2:
            raise ValueError(
                'The head asks for TD features (it has `loss_td`, the '
                'Temporal Diversity loss, which compares pairs of segments), '
                f'but ResNetTDRL was built with num_segments='
                f'{self.num_segments}. Set `model.backbone.num_segments` (and '
                'SampleFrames(num_clips=...)) to 2 or more, e.g. 8, or '
                'remove `loss_td` from the head.')

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, tuple]:
        """Extract features of ``(N*T, 3, H, W)`` frames.

        Returns:
            Tensor or tuple: As MMAction2's ``ResNet`` (e.g.
            ``(N*T, 2048, H/32, W/32)`` for R50); in training mode with
            requested TD features, ``(that, {'td_features': list})``.
        """
        check_segment_batch(x, self.num_segments, type(self).__name__)
        with_td = returns_aux_outputs(self)
        x = self.conv1(x)
        x = self.maxpool(x)
        outs, td_features = [], []
        for i, layer_name in enumerate(self.res_layers):
            for block in getattr(self, layer_name):
                if with_td and block.with_td_loss:
                    x, z = block(x, return_td=True)
                    td_features.append(z)
                else:
                    x = block(x)
            if i in self.out_indices:
                outs.append(x)
        feats = outs[0] if len(outs) == 1 else tuple(outs)
        if with_td:
            aux: Dict[str, list] = {TD_FEATURES: td_features}
            return feats, aux
        return feats
