# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TDN-ResNet, the backbone of TDN (Wang et al., CVPR 2021), Sec. 3.4.

The RGB path is MMAction2's ResNet on each segment's centre frame. A
short-term TDM (:class:`~mmaction_tdx.models.common.ShortTermTDM`) fuses
local motion from the frame differences into the early stages, and every
residual block of the later stages gets a long-term TDM
(:class:`~mmaction_tdx.models.common.LongTermTDM`) followed by a temporal
module (TDN: a channel-wise temporal conv initialised as a shift) after
its first conv. ``dict(type='ResNetTDN', depth=50, num_segments=8)`` is the
official release (``MCG-NJU/TDN``, ``ops/tdn_net.py`` and
``ops/base_module.py``).
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmaction.models.backbones.resnet import BasicBlock, Bottleneck, ResNet
from mmaction.registry import MODELS
from mmcv.cnn import fuse_conv_bn
from mmengine.logging import MMLogger, print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from torch.utils import checkpoint as cp

from ..common.long_term_tdm import LongTermTDM
from ..common.short_term_tdm import ShortTermTDM
from ..utils.aux_outputs import (
    TD_FEATURES,
    AuxOutputsMixin,
    returns_aux_outputs,
)
from ..utils.tdn_checkpoint import torchvision_resnet_key
from .resnet_args import check_resnet_stage_args

# Paper numbering (Sec. 3.4, Table 1(d)): stage 1 is the stem (conv1 and
# max-pool), stages 2-5 are ``layer1``-``layer4``.
STEM_STAGE = 1
NUM_PAPER_STAGES = 5


class LongTermUnitMixin:
    """Runs a block's long-term unit (L-TDM, temporal modules) after
    ``conv1``, as the release's ``BottleneckShift`` does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ltdm: Optional[nn.Module] = None
        self.temporal: Optional[nn.Module] = None
        self.with_td = False

    def attach_long_term(self,
                         ltdm: Optional[nn.Module],
                         temporal: Optional[nn.Module],
                         with_td: bool = False) -> None:
        """Insert ``ltdm`` then ``temporal`` after ``conv1``; either may be
        None (no such unit). ``with_td``: the block can return the unit's
        output as TD features (``forward(x, return_td=True)``)."""
        self.ltdm = ltdm
        self.temporal = temporal
        self.with_td = with_td

    def long_term(self, out: torch.Tensor) -> torch.Tensor:
        """``(N*T, C, H, W) -> (N*T, C, H, W)``; identity if unattached."""
        if self.ltdm is not None:
            out = self.ltdm(out)
        if self.temporal is not None:
            out = self.temporal(out)
        return out


class TDNBottleneck(LongTermUnitMixin, Bottleneck):
    """MMAction2's Bottleneck with the long-term unit after ``conv1``."""

    def forward(self, x: torch.Tensor, return_td: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """``(N*T, C_in, H, W) -> (N*T, C_out, H', W')``; with
        ``return_td`` also the long-term unit's output (the TD features),
        ``(N*T, C_mid, H, W)``."""

        def _inner_forward(x):
            identity = x
            out = self.conv1(x)
            td_features = self.long_term(out)
            out = self.conv2(td_features)
            out = self.conv3(out)
            if self.downsample is not None:
                identity = self.downsample(x)
            return out + identity, td_features

        if self.with_cp and x.requires_grad:
            out, td_features = cp.checkpoint(
                _inner_forward, x, use_reentrant=False)
        else:
            out, td_features = _inner_forward(x)
        out = self.relu(out)
        return (out, td_features) if return_td else out


class TDNBasicBlock(LongTermUnitMixin, BasicBlock):
    """MMAction2's BasicBlock (ResNet-18/34) with the long-term unit after
    ``conv1``; for quick experiments, the release has no such model."""

    def forward(self, x: torch.Tensor, return_td: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """As :meth:`TDNBottleneck.forward`."""
        identity = x
        out = self.conv1(x)
        td_features = self.long_term(out)
        out = self.conv2(td_features)
        if self.downsample is not None:
            identity = self.downsample(x)
        out = self.relu(out + identity)
        return (out, td_features) if return_td else out


def _as_cfg_list(cfg: Union[None, dict, Sequence[dict]]) -> List[dict]:
    if cfg is None:
        return []
    if isinstance(cfg, dict):
        return [cfg]
    return list(cfg)


@MODELS.register_module()
class ResNetTDN(AuxOutputsMixin, ResNet):
    """TDN-ResNet backbone (Sec. 3.4), the official release by default.

    Input: one entry per segment, ``(N*T, L*3, H, W)``: each of the ``T``
    segments of a clip contributes ``L`` consecutive frames
    (``L = frames_per_segment``, 5 with an S-TDM) stacked on channels
    (frame ``l`` in channels ``[3l, 3l + 3)``), as in the release. This is
    the same memory as the ``(N*T*L, 3, H, W)`` frames that
    ``SampleFrames(clip_len=5, frame_interval=1, num_clips=T)`` and
    ``FormatShape('NCHW')`` produce; ``SegmentRecognizer2D`` (which reads
    :attr:`frames_per_segment`) stacks them. With ``L = 1`` it is the
    ordinary ResNet input. The RGB path sees the centre frame; the S-TDM
    sees the frames' differences. The output has one feature map per
    segment.

    Stages are numbered as in the paper: 1 = stem (conv1 + max-pool),
    2-5 = ``layer1``-``layer4``. Defaults: S-TDM fused in stages 1-2, an
    L-TDM and a channel-wise temporal conv in every block of stages 3-5
    (Table 1(d), row "Stage 1-2 / Stage 3-5").

    Args:
        depth (int): 50 or 101 (the paper); 18 and 34 for quick
            experiments.
        num_segments (int): ``T``. Defaults to 8.
        short_term_tdm (dict, optional): Config of the S-TDM
            (``ShortTermTDM``); the backbone fills in ``num_segments``,
            ``depth``, ``num_fused_stages`` and the layer configs. None
            disables it (Table 1(e), "L-TDM only" and the baseline).
            Defaults to ``dict(type='ShortTermTDM')``.
        short_term_stages (Sequence[int]): Stages whose output gets the
            S-TDM's motion features, consecutive from 1: ``(1,)``,
            ``(1, 2)`` (default) or ``(1, 2, 3)`` (Table 1(d)).
        long_term_tdm (dict, optional): Config of the L-TDM
            (``LongTermTDM``), built per block with ``in_channels`` and
            ``num_segments`` filled in. None: no L-TDM (Table 1(e), "S-TDM
            only" and the baseline; Table 1(f)). Defaults to
            ``dict(type='LongTermTDM')``.
        temporal_module (dict | list[dict], optional): Temporal module(s)
            after the L-TDM in every long-term block, applied in order,
            from ``mmaction_tdx.models.common.temporal_modules`` (e.g.
            ``dict(type='TemporalShift')`` for TSM, or
            ``[dict(type='MotionEnhancementModule'),
            dict(type='ChannelwiseTemporalConv')]`` for TEINet, Table
            1(f)). Defaults to ``dict(type='ChannelwiseTemporalConv')``
            (kernel 3, no bias, shift init, trainable).
        long_term_stages (Sequence[int]): Stages (2-5) whose blocks get the
            L-TDM and temporal module(s). Defaults to ``(3, 4, 5)``.
        frames_per_segment (int, optional): ``L``. Defaults to None: the
            S-TDM's ``frames_per_segment`` (5), or 1 without an S-TDM. With
            an S-TDM it must equal the S-TDM's; without one and ``L > 1``
            the RGB path uses the centre frame of each segment.
        pretrained (str, optional): Path or URL of an ImageNet ResNet state
            dict in torchvision's layout (e.g.
            ``https://download.pytorch.org/models/resnet50-19c8e357.pth``,
            the weights the release starts from). It initialises the RGB
            path, the S-TDM's residual stages (copies of the same stages)
            and the S-TDM's first conv (the mean of ``conv1`` over RGB,
            repeated for every input channel, as the release does).
            Defaults to None.
        td_blocks (Sequence[Sequence[int]]): TD loss on TDN (a combination
            neither paper tried): for each of the 4 residual stages
            (``layer1``-``layer4``), the indices (negative ones count from
            the end) of the blocks whose long-term unit output (the input
            of ``conv2``: L-TDM, then temporal module) is handed to the
            head's ``TemporalDiversityLoss``, as ``ResNetTDRL``'s
            ``td_blocks``. In training mode, after
            ``request_aux_outputs(('td_features',))``, ``forward`` returns
            ``(features, {'td_features': [z, ...]})``, one
            ``(N*T, C_mid, H', W')`` tensor per chosen block in network
            order; otherwise the plain features. The blocks must have a
            long-term unit. Defaults to ``((), (), (), ())`` (none).
        **kwargs: Other arguments of MMAction2's ``ResNet`` (``norm_eval``,
            ``partial_bn``, ``frozen_stages``, ``with_cp``, ...).
            ``torchvision_pretrain`` must stay True (its default).

    Inference: :meth:`switch_to_deploy` folds every eval-mode BN into
    the conv before it, once (the same function; for speed).

    Shape:
        ``(N*V*T, L*3, H, W) -> (N*V*T, C_out, H/32, W/32)``.
    """

    supported_aux_outputs = (TD_FEATURES, )

    arch_settings = {
        18: (TDNBasicBlock, (2, 2, 2, 2)),
        34: (TDNBasicBlock, (3, 4, 6, 3)),
        50: (TDNBottleneck, (3, 4, 6, 3)),
        101: (TDNBottleneck, (3, 4, 23, 3)),
        152: (TDNBottleneck, (3, 8, 36, 3)),
    }

    def __init__(self,
                 depth: int,
                 num_segments: int = 8,
                 short_term_tdm: Optional[dict] = dict(type='ShortTermTDM'),
                 short_term_stages: Sequence[int] = (1, 2),
                 long_term_tdm: Optional[dict] = dict(type='LongTermTDM'),
                 temporal_module: Union[None, dict, Sequence[dict]] = dict(
                     type='ChannelwiseTemporalConv'),
                 long_term_stages: Sequence[int] = (3, 4, 5),
                 frames_per_segment: Optional[int] = None,
                 pretrained: Optional[str] = None,
                 td_blocks: Sequence[Sequence[int]] = ((), (), (), ()),
                 **kwargs) -> None:
        name = type(self).__name__
        if kwargs.get('num_stages', 4) != 4:
            raise ValueError(f'{name} needs all 4 residual stages; do not '
                             'set num_stages.')
        if not kwargs.get('torchvision_pretrain', True):
            raise ValueError(
                f'{name} loads `pretrained` as a torchvision-layout ImageNet '
                'ResNet; torchvision_pretrain=False is not supported. Use '
                'load_from for checkpoints of this model.')
        if not isinstance(num_segments, int) or num_segments < 1:
            raise ValueError(f'{name}: num_segments must be a positive '
                             f'integer, got {num_segments!r}.')
        check_resnet_stage_args(
            name,
            out_indices=kwargs.get('out_indices', (3, )),
            frozen_stages=kwargs.get('frozen_stages', -1))
        super().__init__(depth, pretrained=pretrained, **kwargs)
        self.num_segments = num_segments
        self.short_term_stages = self._check_short_term_stages(
            short_term_stages if short_term_tdm is not None else ())
        self.long_term_stages = self._check_long_term_stages(
            long_term_stages)

        self.stdm = None
        if short_term_tdm is not None:
            cfg = copy.deepcopy(short_term_tdm)
            cfg.setdefault('num_segments', num_segments)
            cfg.setdefault('depth', depth)
            cfg.setdefault('num_fused_stages', len(self.short_term_stages))
            cfg.setdefault('conv_cfg', self.conv_cfg)
            cfg.setdefault('norm_cfg', self.norm_cfg)
            cfg.setdefault('act_cfg', self.act_cfg)
            cfg.setdefault('with_cp', self.with_cp)
            if frames_per_segment is not None:
                cfg.setdefault('frames_per_segment', frames_per_segment)
            self.stdm = MODELS.build(cfg)
            if cfg['num_fused_stages'] != len(self.short_term_stages):
                raise ValueError(
                    f'{name}: short_term_tdm.num_fused_stages='
                    f"{cfg['num_fused_stages']} contradicts short_term_stages="
                    f'{tuple(self.short_term_stages)}; set only the latter.')
            stdm_frames = self.stdm.frames_per_segment
            if frames_per_segment not in (None, stdm_frames):
                raise ValueError(
                    f'{name}: frames_per_segment={frames_per_segment} but '
                    f'the S-TDM takes {stdm_frames} frames per segment; set '
                    'one value.')
            frames_per_segment = stdm_frames
        elif frames_per_segment is None:
            frames_per_segment = 1
        if not isinstance(frames_per_segment, int) or frames_per_segment < 1 \
                or frames_per_segment % 2 == 0:
            raise ValueError(
                f'{name}: frames_per_segment must be a positive odd integer '
                f'(a centre frame must exist), got {frames_per_segment!r}.')
        self.frames_per_segment = frames_per_segment

        self.long_term_tdm = copy.deepcopy(long_term_tdm)
        self.temporal_module = copy.deepcopy(temporal_module)
        self.td_blocks = self._resolve_td_blocks(td_blocks)
        self._attach_long_term_units()
        self.deploy = False

    @staticmethod
    def _check_short_term_stages(stages: Sequence[int]) -> List[int]:
        stages = sorted(stages)
        if stages and stages != list(range(STEM_STAGE,
                                           STEM_STAGE + len(stages))):
            raise ValueError(
                'ResNetTDN: short_term_stages must be consecutive stages '
                'starting at the stem (paper numbering: 1 = stem, 2-5 = '
                'layer1-4), e.g. (1,), (1, 2) or (1, 2, 3); got '
                f'{tuple(stages)}.')
        if len(stages) > NUM_PAPER_STAGES:
            raise ValueError('ResNetTDN: a ResNet has only 5 stages; got '
                             f'short_term_stages={tuple(stages)}.')
        return stages

    @staticmethod
    def _check_long_term_stages(stages: Sequence[int]) -> List[int]:
        stages = sorted(set(stages))
        wrong = [s for s in stages if not 2 <= s <= NUM_PAPER_STAGES]
        if wrong:
            raise ValueError(
                'ResNetTDN: long_term_stages must be residual stages 2-5 '
                '(paper numbering: 1 = stem, 2-5 = layer1-4); got '
                f'{tuple(stages)}.')
        return stages

    def _resolve_td_blocks(self, td_blocks) -> Tuple[Tuple[int, ...], ...]:
        """Sorted non-negative block indices per stage, each a block with a
        long-term unit."""
        name = type(self).__name__
        if not isinstance(td_blocks, (list, tuple)) or \
                len(td_blocks) != self.num_stages:
            raise ValueError(
                f'{name}: `td_blocks` needs one entry (a tuple of block '
                f'indices) per residual stage, i.e. {self.num_stages}, got '
                f'{td_blocks!r}. Use e.g. ((), (), (), (-1,)).')
        has_unit = self.long_term_tdm is not None or bool(
            _as_cfg_list(self.temporal_module))
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
            if chosen and (stage + 2 not in self.long_term_stages
                           or not has_unit):
                raise ValueError(
                    f'{name}: `td_blocks[{stage}]` picks blocks of '
                    f'layer{stage + 1} (paper stage {stage + 2}), which have '
                    'no long-term unit (L-TDM or temporal module) whose '
                    f'output could be the TD features (long_term_stages='
                    f'{tuple(self.long_term_stages)}). Pick blocks of the '
                    'long-term stages or add the stage to long_term_stages.')
            resolved.append(tuple(sorted(chosen)))
        return tuple(resolved)

    def check_aux_request(self, names: Tuple[str, ...]) -> None:
        """Reject TD features this backbone cannot provide (see
        :class:`~mmaction_tdx.models.utils.aux_outputs.AuxOutputsMixin`).
        """
        name = type(self).__name__
        if TD_FEATURES in names and not any(self.td_blocks):
            raise ValueError(
                f'The head asks for TD features (it has `loss_td`), but '
                f'{name} was built without `td_blocks`. Set e.g. '
                '`td_blocks=((), (-1,), (-1,), (-1,))` (the last block of '
                'paper stages 3-5), or remove `loss_td` from the head.')
        if TD_FEATURES in names and self.num_segments < 2:
            raise ValueError(
                'The head asks for TD features (it has `loss_td`, the '
                'Temporal Diversity loss, which compares pairs of segments), '
                f'but {name} was built with num_segments='
                f'{self.num_segments}. Set `model.backbone.num_segments` (and '
                'SampleFrames(num_clips=...)) to 2 or more, or remove '
                '`loss_td` from the head.')

    def _attach_long_term_units(self) -> None:
        """Give every block of the long-term stages its L-TDM and temporal
        module(s), built for the block's ``conv1`` output channels."""
        temporal_cfgs = _as_cfg_list(self.temporal_module)
        for stage in self.long_term_stages:
            for index, block in enumerate(getattr(self, f'layer{stage - 1}')):
                channels = block.conv1.conv.out_channels
                ltdm = None
                if self.long_term_tdm is not None:
                    cfg = copy.deepcopy(self.long_term_tdm)
                    cfg.setdefault('in_channels', channels)
                    cfg.setdefault('num_segments', self.num_segments)
                    cfg.setdefault('conv_cfg', self.conv_cfg)
                    cfg.setdefault('norm_cfg', self.norm_cfg)
                    ltdm = MODELS.build(cfg)
                temporal = []
                for tcfg in temporal_cfgs:
                    tcfg = copy.deepcopy(tcfg)
                    tcfg.setdefault('in_channels', channels)
                    tcfg.setdefault('num_segments', self.num_segments)
                    temporal.append(MODELS.build(tcfg))
                if not temporal:
                    temporal = None
                elif len(temporal) == 1:
                    temporal = temporal[0]
                else:
                    temporal = nn.Sequential(*temporal)
                block.attach_long_term(
                    ltdm, temporal, index in self.td_blocks[stage - 2])

    def _check_input(self, x: torch.Tensor) -> None:
        """Check ``(N*T, L*3, H, W)``, naming the fix."""
        name = type(self).__name__
        per_segment = self.frames_per_segment
        channels = self.in_channels * per_segment
        layout = (f'(N*T, {channels}, H, W): the {per_segment} frame(s) of '
                  'each segment stacked on channels')
        if x.dim() != 4 or x.shape[1] != channels:
            fix = ''
            if x.dim() == 4 and x.shape[1] == self.in_channels:
                fix = (f' Frames given as (N*T*{per_segment}, '
                       f'{self.in_channels}, H, W) stack with `x.view(-1, '
                       f'{channels}, *x.shape[-2:])` (the same memory); '
                       'SegmentRecognizer2D does this.')
            raise ValueError(
                f'{name} (frames_per_segment={per_segment}) takes {layout}, '
                f'got a tensor of shape {tuple(x.shape)}.{fix}')
        if x.shape[0] % self.num_segments != 0:
            interval = ', frame_interval=1' if per_segment > 1 else ''
            raise ValueError(
                f'{name} was built with num_segments={self.num_segments}, '
                f'but got {x.shape[0]} segments in total, which is not a '
                'whole number of clips. Sample with `SampleFrames(clip_len='
                f'{per_segment}{interval}, num_clips={self.num_segments})` '
                '(and the same num_clips in test), or set num_segments to '
                'the number of segments sampled.')

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, tuple]:
        """Extract one feature map per segment.

        Args:
            x (Tensor): ``(N*T, L*3, H, W)``, the ``L`` consecutive frames
                of each segment stacked on channels.

        Returns:
            Tensor | tuple: ``(N*T, C, H/32, W/32)`` (or the stages in
            ``out_indices``); in training mode with requested TD features,
            ``(that, {'td_features': [z, ...]})``.
        """
        self._check_input(x)
        with_td = returns_aux_outputs(self)
        start = self.in_channels * (self.frames_per_segment // 2)
        centre = x[:, start:start + self.in_channels]
        motions = self.stdm(x) if self.stdm is not None else []

        x = self.maxpool(self.conv1(centre))
        if motions:
            x = self.stdm.fuse(x, motions[0])
        outs, td_features = [], []
        for i, layer_name in enumerate(self.res_layers):
            res_layer = getattr(self, layer_name)
            if with_td and self.td_blocks[i]:
                # Block by block, to collect the declared TD outputs.
                for block in res_layer:
                    if block.with_td:
                        x, z = block(x, return_td=True)
                        td_features.append(z)
                    else:
                        x = block(x)
            else:
                x = res_layer(x)
            if i + 1 < len(motions):
                x = self.stdm.fuse(x, motions[i + 1])
            if i in self.out_indices:
                outs.append(x)
        feats = outs[0] if len(outs) == 1 else tuple(outs)
        if with_td:
            return feats, {TD_FEATURES: td_features}
        return feats

    def switch_to_deploy(self) -> None:
        """Reparameterise for inference, once: fold every BN (with its
        running statistics) into the conv before it.

        The deployed model computes the function of this model in eval
        mode (tests: float64, 1e-6) with fewer passes over the feature
        maps: the RGB path, the S-TDM and every L-TDM lose their BNs
        (``nn.Identity`` afterwards). Call it on a trained model in eval
        mode, after loading its weights; the result is for inference only
        (training it would no longer normalise). Idempotent.
        """
        if self.deploy:
            return
        for module in self.modules():
            if module is not self and isinstance(module,
                                                 (LongTermTDM, ShortTermTDM)):
                module.switch_to_deploy()
        fuse_conv_bn(self)
        self.deploy = True

    def imagenet_state_dict(self, source: Dict[str, torch.Tensor]
                            ) -> Dict[str, torch.Tensor]:
        """Map a torchvision ResNet state dict onto this model.

        Args:
            source (dict): torchvision-layout ResNet weights.

        Returns:
            dict: this model's keys that ImageNet initialises (RGB path,
            S-TDM residual stages, S-TDM first conv) with their tensors.

        Raises:
            KeyError: listing the expected source keys that are missing or
                have another shape (e.g. another depth).
        """
        own = self.state_dict()
        mapped, problems = {}, []
        for key, tensor in own.items():
            if key == 'stdm.stem.conv.weight':
                src_key = 'conv1.weight'
            else:
                src_key = torchvision_resnet_key(key)
            if src_key is None:
                continue
            if src_key not in source:
                if not key.endswith('num_batches_tracked'):
                    problems.append(f'{src_key} (for {key}): missing')
                continue
            value = source[src_key]
            if key == 'stdm.stem.conv.weight':
                # Every stacked input gets the RGB-mean of conv1 (release).
                value = value.mean(dim=1, keepdim=True).expand_as(tensor)
            if value.shape != tensor.shape:
                problems.append(
                    f'{src_key} (for {key}): shape {tuple(value.shape)} != '
                    f'{tuple(tensor.shape)}')
                continue
            mapped[key] = value.clone()
        if problems:
            raise KeyError(
                f'The ImageNet weights do not fit a ResNet-{self.depth} '
                f'({len(problems)} problems; is it a torchvision ResNet of '
                'the same depth?):\n  ' + '\n  '.join(problems))
        return mapped

    def load_imagenet_weights(self, path: str) -> None:
        """Initialise from a torchvision ResNet at ``path`` (file or URL)."""
        logger = MMLogger.get_current_instance()
        checkpoint = CheckpointLoader.load_checkpoint(
            path, map_location='cpu', logger=logger)
        source = checkpoint.get('state_dict', checkpoint)
        mapped = self.imagenet_state_dict(source)
        self.load_state_dict(mapped, strict=False)
        used = {torchvision_resnet_key(k) or 'conv1.weight' for k in mapped}
        unused = sorted(set(source) - used)
        print_log(
            f'{type(self).__name__}: {len(mapped)} tensors initialised from '
            f'{path}; not used: {unused}', logger=logger)

    def init_weights(self) -> None:
        """Random init from ``init_cfg``, then ImageNet if ``pretrained``."""
        BaseModule.init_weights(self)
        # MMEngine does not recurse into the (plain ``nn.Module``) blocks,
        # so the long-term units' own initialisation (e.g. the temporal
        # conv's shift, an L-TDM ``init_cfg``) is run here.
        for stage in self.long_term_stages:
            for block in getattr(self, f'layer{stage - 1}'):
                units = [block.ltdm, block.temporal]
                if isinstance(block.temporal, nn.Sequential):
                    units = [block.ltdm, *block.temporal]
                for unit in units:
                    if callable(getattr(unit, 'init_weights', None)):
                        unit.init_weights()
        if isinstance(self.pretrained, str):
            self.load_imagenet_weights(self.pretrained)
        elif self.pretrained is not None:
            raise TypeError('pretrained must be a str (path or URL) or None, '
                            f'got {type(self.pretrained).__name__}.')
