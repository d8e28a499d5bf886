# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The temporal-ResNet base of ``ResNetTDN``, ``ResNetTDRL`` and
``ResNetTSMTD``: what a ResNet needs to run on segments and to hand the
Temporal Diversity (TD) loss its features.

A subclass adds its temporal units to MMAction2's ResNet blocks (with
:meth:`TemporalResNet._build_module`) and, for a stem other than
``conv1`` + max-pool, overrides :meth:`TemporalResNet._forward_stem` and
:meth:`TemporalResNet._fuse_stage` (TDN fuses its short-term TDM there).
The base holds the rest once:

* the sampling rule :meth:`TemporalResNet.sampling_of` (``T`` segments of
  ``L`` frames), used by ``__init__`` and by the datasets' sampling check;
* the input layout ``(N*T, L*3, H, W)``, checked once at the entry; the
  temporal units inside trust it;
* the TD blocks (``td_blocks``, one tuple of block indices per stage,
  negative ones counting from the end) and the checks of a request for
  TD features;
* the stage loop, one implementation for :meth:`forward` (plain
  features, in every mode) and :meth:`forward_with_aux` (the features and
  ``{'td_features': [z_1, ...]}``, one tensor per TD block in network
  order).
"""
import copy
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmaction.models.backbones.resnet import ResNet
from mmaction.registry import MODELS
from torch.utils import checkpoint as cp

from ...compat.resnet_train import TrainReturnsSelfMixin
from ..utils.aux_outputs import TD_FEATURES, AuxOutputsMixin
from .resnet_args import check_resnet_stage_args

TDBlocks = Tuple[Tuple[int, ...], ...]


class TDBlockMixin:
    """A residual block that can also return its TD features.

    Subclasses implement :meth:`forward_td`, the block before its final
    ReLU together with the TD features; ``forward`` adds the checkpointing
    (``with_cp``) and the ReLU once for all blocks.
    """

    def forward_td(self, x: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x -> (out + identity, td_features)``, before the ReLU."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, return_td: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """``(N*T, C_in, H, W) -> (N*T, C_out, H', W')``, plus the TD
        features if ``return_td``."""
        if getattr(self, 'with_cp', False) and x.requires_grad:
            out, td_features = cp.checkpoint(
                self.forward_td, x, use_reentrant=False)
        else:
            out, td_features = self.forward_td(x)
        out = self.relu(out)
        return (out, td_features) if return_td else out


class TemporalResNet(TrainReturnsSelfMixin, AuxOutputsMixin, ResNet):
    """MMAction2's ResNet on ``T`` segments per video, with TD features.

    Args:
        depth (int): ResNet depth.
        num_segments (int): ``T``, segments per video. Defaults to 8.
        sampling_cfg (dict, optional): The subclass's arguments that decide
            the frames per segment, passed to :meth:`sampling_of`.
        **kwargs: Arguments of MMAction2's ``ResNet`` (of ``ResNetTSM``
            where :attr:`resnet_takes_num_segments`).

    Subclasses set ``self.td_blocks = self._resolve_td_blocks(td_blocks)``
    once their blocks are built.
    """

    supported_aux_outputs = (TD_FEATURES, )
    #: Pass ``num_segments`` on to the ResNet class (``ResNetTSM``).
    resnet_takes_num_segments = False

    @classmethod
    def sampling_of(cls, num_segments: int = 8, **cfg) -> Tuple[int, int]:
        """``(T, L)``: segments per video and consecutive frames per segment
        that a backbone built from ``cfg`` reads. One frame per segment
        here; ``ResNetTDN`` overrides it.

        Args:
            num_segments (int): ``T``.
            **cfg: The rest of the backbone config (ignored here).

        Raises:
            ValueError: if the config cannot be sampled for, naming the fix.
        """
        if not isinstance(num_segments, int) or isinstance(
                num_segments, bool) or num_segments < 1:
            raise ValueError(f'{cls.__name__}: `num_segments` must be a '
                             f'positive integer, got {num_segments!r}.')
        return num_segments, 1

    def __init__(self,
                 depth: int,
                 num_segments: int = 8,
                 sampling_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        num_segments, frames_per_segment = self.sampling_of(
            num_segments=num_segments, **(sampling_cfg or {}))
        check_resnet_stage_args(
            type(self).__name__,
            num_stages=kwargs.get('num_stages', 4),
            out_indices=kwargs.get('out_indices', (3, )),
            frozen_stages=kwargs.get('frozen_stages', -1))
        if self.resnet_takes_num_segments:
            kwargs['num_segments'] = num_segments
        super().__init__(depth, **kwargs)
        self.num_segments = num_segments
        self.frames_per_segment = frames_per_segment
        self.td_blocks: TDBlocks = ((), ) * self.num_stages

    # --- building -----------------------------------------------------

    def _build_module(self, cfg: Optional[dict], in_channels: int,
                      **defaults) -> Optional[nn.Module]:
        """Build a temporal unit from ``cfg`` (None: no unit) with
        ``in_channels``, ``num_segments`` and ``defaults`` filled in where
        the config leaves them out."""
        if cfg is None:
            return None
        cfg = copy.deepcopy(cfg)
        defaults.update(in_channels=in_channels,
                        num_segments=self.num_segments)
        for key, value in defaults.items():
            cfg.setdefault(key, value)
        return MODELS.build(cfg)

    def _resolve_td_blocks(self, td_blocks: Sequence[Sequence[int]]
                           ) -> TDBlocks:
        """Sorted non-negative block indices per stage; each stage with TD
        blocks is passed to :meth:`_check_td_stage`."""
        name = type(self).__name__
        if not isinstance(td_blocks, (list, tuple)) or \
                len(td_blocks) != self.num_stages:
            raise ValueError(
                f'{name}: `td_blocks` needs one entry (a tuple of block '
                f'indices) per stage (layer1-layer{self.num_stages}), i.e. '
                f'{self.num_stages}, got '
                f'{td_blocks!r}. Use e.g. ((), (-1,), (-1,), (-1,)).')
        resolved = []
        for stage, (indices, num_blocks) in enumerate(
                zip(td_blocks, self.stage_blocks)):
            chosen = set()
            for index in indices:
                if not isinstance(index, int) or isinstance(index, bool) \
                        or not -num_blocks <= index < num_blocks:
                    raise ValueError(
                        f'{name}: `td_blocks[{stage}]` holds {index!r}, but '
                        f'layer{stage + 1} of ResNet-{self.depth} has '
                        f'{num_blocks} blocks; use indices in '
                        f'[{-num_blocks}, {num_blocks - 1}].')
                chosen.add(index % num_blocks)
            if chosen:
                self._check_td_stage(stage, sorted(chosen))
            resolved.append(tuple(sorted(chosen)))
        return tuple(resolved)

    def _check_td_stage(self, stage: int, indices: List[int]) -> None:
        """Raise if blocks ``indices`` of ``layer{stage + 1}`` have no
        temporal unit whose output could be the TD features."""

    def check_aux_request(self, names: Tuple[str, ...]) -> None:
        """Refuse TD features without TD blocks or with one segment."""
        if TD_FEATURES not in names:
            return
        name = type(self).__name__
        if not any(self.td_blocks):
            raise ValueError(
                'The head asks for TD features (it has `loss_td`), but '
                f'{name} was built with no TDRL-B block (a block whose '
                'features feed the TD loss): `td_blocks` is empty. Set e.g. '
                '`td_blocks=((), (-1,), (-1,), (-1,))` (the last block of '
                'layer2-4), or remove `loss_td` from the head.')
        if self.num_segments < 2:
            raise ValueError(
                'The head asks for TD features (it has `loss_td`, the '
                'Temporal Diversity loss, which compares pairs of segments), '
                f'but {name} was built with num_segments='
                f'{self.num_segments}. Set `model.backbone.num_segments` (and '
                'SampleFrames(num_clips=...)) to 2 or more, e.g. 8, or '
                'remove `loss_td` from the head.')

    # --- forward ------------------------------------------------------

    def _check_input(self, x: torch.Tensor) -> None:
        """Check ``(N*T, L*3, H, W)`` once, naming the fix; every temporal
        unit inside relies on this layout."""
        name = type(self).__name__
        per_segment = self.frames_per_segment
        channels = self.in_channels * per_segment
        if x.dim() != 4 or x.shape[1] != channels:
            stacked = (f': the {per_segment} frames of each segment stacked '
                       'on channels' if per_segment > 1 else '')
            fix = ''
            if x.dim() == 4 and x.shape[1] == self.in_channels:
                fix = (f' Frames given as (N*T*{per_segment}, '
                       f'{self.in_channels}, H, W) stack with `x.view(-1, '
                       f'{channels}, *x.shape[-2:])` (the same memory); '
                       'SegmentRecognizer2D does this.')
            elif x.dim() == 5:
                fix = (' Fold videos and segments into the first axis, e.g. '
                       '`x.view(-1, *x.shape[-3:])`.')
            raise ValueError(
                f'{name} (frames_per_segment={per_segment}) takes '
                f'(N*T, {channels}, H, W){stacked}, got a tensor of shape '
                f'{tuple(x.shape)}.{fix}')
        if x.shape[0] % self.num_segments != 0:
            interval = ', frame_interval=1' if per_segment > 1 else ''
            raise ValueError(
                f'{name} was built with num_segments={self.num_segments}, '
                f'but got {x.shape[0]} segments in total, which is not a '
                f'multiple of {self.num_segments} (not a whole number of '
                'clips). Sample with `SampleFrames(clip_len='
                f'{per_segment}{interval}, num_clips={self.num_segments})` '
                '(and the same num_clips in test), or set num_segments to '
                'the number of segments sampled.')

    def _forward_stem(self, x: torch.Tensor) -> Tuple[torch.Tensor, Any]:
        """The stem, ``conv1`` and max-pool; also returns what
        :meth:`_fuse_stage` needs (nothing here)."""
        return self.maxpool(self.conv1(x)), None

    def _fuse_stage(self, stage: int, x: torch.Tensor,
                    stem_state: Any) -> torch.Tensor:
        """Output of ``layer{stage + 1}``, after whatever the model adds to
        it (TDN: the short-term TDM's motion features)."""
        return x

    def _forward_td_block(self, block: nn.Module, x: torch.Tensor
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
        """A TD block's output and TD features."""
        return block(x, return_td=True)

    def _forward(self, x: torch.Tensor, with_td: bool
                 ) -> Tuple[Union[torch.Tensor, tuple], List[torch.Tensor]]:
        """The stage loop: features, and TD features if ``with_td``."""
        self._check_input(x)
        x, stem_state = self._forward_stem(x)
        outs, td_features = [], []
        for i, layer_name in enumerate(self.res_layers):
            res_layer = getattr(self, layer_name)
            if with_td and self.td_blocks[i]:
                for index, block in enumerate(res_layer):
                    if index in self.td_blocks[i]:
                        x, z = self._forward_td_block(block, x)
                        td_features.append(z)
                    else:
                        x = block(x)
            else:
                x = res_layer(x)
            x = self._fuse_stage(i, x, stem_state)
            if i in self.out_indices:
                outs.append(x)
        return (outs[0] if len(outs) == 1 else tuple(outs)), td_features

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, tuple]:
        """Extract one feature map per segment.

        Args:
            x (Tensor): ``(N*T, L*3, H, W)``, the ``L`` consecutive frames
                of each segment stacked on channels (``L = 1``: frames).

        Returns:
            Tensor | tuple: ``(N*T, C, H/32, W/32)``, or the stages in
            ``out_indices``; the same in every mode.
        """
        return self._forward(x, with_td=False)[0]

    def forward_with_aux(self, x: torch.Tensor) -> tuple:
        """:meth:`forward`'s features and the requested auxiliary outputs:
        ``{'td_features': [z, ...]}`` after
        ``request_aux_outputs(('td_features',))``, one tensor per TD block
        in network order; ``{}`` if nothing was requested."""
        with_td = TD_FEATURES in self.aux_outputs
        feats, td_features = self._forward(x, with_td)
        return feats, ({TD_FEATURES: td_features} if with_td else {})
