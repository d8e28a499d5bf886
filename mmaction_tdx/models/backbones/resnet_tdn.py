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
import inspect
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmaction.models.backbones.resnet import BasicBlock, Bottleneck
from mmaction.registry import MODELS
from mmcv.cnn import fuse_conv_bn
from mmengine.logging import MMLogger, print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader

from ..common.long_term_tdm import LongTermTDM
from ..common.short_term_tdm import ShortTermTDM
from ..utils.tdn_checkpoint import torchvision_resnet_key
from .temporal_resnet import TDBlockMixin, TemporalResNet

# Paper numbering (Sec. 3.4, Table 1(d)): stage 1 is the stem (conv1 and
# max-pool), stages 2-5 are ``layer1``-``layer4``.
STEM_STAGE = 1
NUM_PAPER_STAGES = 5
DEFAULT_SHORT_TERM_TDM = dict(type='ShortTermTDM')


class LongTermUnitMixin(TDBlockMixin):
    """Runs a block's long-term unit (L-TDM, temporal modules) after
    ``conv1``, as the release's ``BottleneckShift`` does; the unit's output
    is the block's TD features."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ltdm: Optional[nn.Module] = None
        self.temporal: Optional[nn.Module] = None

    def attach_long_term(self, ltdm: Optional[nn.Module],
                         temporal: Optional[nn.Module]) -> None:
        """Insert ``ltdm`` then ``temporal`` after ``conv1``; either may be
        None (no such unit)."""
        self.ltdm = ltdm
        self.temporal = temporal

    def long_term(self, out: torch.Tensor) -> torch.Tensor:
        """``(N*T, C, H, W) -> (N*T, C, H, W)``; identity if unattached."""
        if self.ltdm is not None:
            out = self.ltdm(out)
        if self.temporal is not None:
            out = self.temporal(out)
        return out


class TDNBottleneck(LongTermUnitMixin, Bottleneck):
    """MMAction2's Bottleneck with the long-term unit after ``conv1``."""

    def forward_td(self, x: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(N*T, C_in, H, W)`` -> the block before its ReLU,
        ``(N*T, C_out, H', W')``, and the long-term unit's output (the TD
        features), ``(N*T, C_mid, H, W)``."""
        td_features = self.long_term(self.conv1(x))
        out = self.conv3(self.conv2(td_features))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity, td_features


class TDNBasicBlock(LongTermUnitMixin, BasicBlock):
    """MMAction2's BasicBlock (ResNet-18/34) with the long-term unit after
    ``conv1``; for quick experiments, the release has no such model."""

    def forward_td(self, x: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`TDNBottleneck.forward_td`."""
        td_features = self.long_term(self.conv1(x))
        out = self.conv2(td_features)
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity, td_features


def _as_cfg_list(cfg: Union[None, dict, Sequence[dict]]) -> List[dict]:
    if cfg is None:
        return []
    if isinstance(cfg, dict):
        return [cfg]
    return list(cfg)


@MODELS.register_module()
class ResNetTDN(TemporalResNet):
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
            ``td_blocks``: after ``request_aux_outputs(('td_features',))``,
            :meth:`forward_with_aux` returns ``(features, {'td_features':
            [z, ...]})``, one ``(N*T, C_mid, H', W')`` tensor per chosen
            block in network order; ``forward`` always returns the plain
            features. The blocks must have a long-term unit. Defaults to
            ``((), (), (), ())`` (none).
        **kwargs: Other arguments of MMAction2's ``ResNet`` (``norm_eval``,
            ``partial_bn``, ``frozen_stages``, ``with_cp``, ...).
            ``torchvision_pretrain`` must stay True (its default).

    Inference: :meth:`switch_to_deploy` folds every eval-mode BN into
    the conv before it, once (the same function; for speed).

    Shape:
        ``(N*V*T, L*3, H, W) -> (N*V*T, C_out, H/32, W/32)``.
    """

    arch_settings = {
        18: (TDNBasicBlock, (2, 2, 2, 2)),
        34: (TDNBasicBlock, (3, 4, 6, 3)),
        50: (TDNBottleneck, (3, 4, 6, 3)),
        101: (TDNBottleneck, (3, 4, 23, 3)),
        152: (TDNBottleneck, (3, 8, 36, 3)),
    }

    @classmethod
    def sampling_of(cls,
                    num_segments: int = 8,
                    short_term_tdm: Optional[dict] = DEFAULT_SHORT_TERM_TDM,
                    frames_per_segment: Optional[int] = None,
                    **cfg) -> Tuple[int, int]:
        """``(T, L)``: ``L`` is the S-TDM's ``frames_per_segment`` (5 by
        default), or ``frames_per_segment`` (1 if None) without an S-TDM.

        Raises:
            ValueError: if ``frames_per_segment`` contradicts the S-TDM's or
                is not a positive odd integer.
        """
        num_segments, _ = super().sampling_of(num_segments)
        frames = 1 if frames_per_segment is None else frames_per_segment
        if short_term_tdm is not None:
            # The S-TDM's own setting, else ours (filled in), else its
            # default.
            stdm_frames = short_term_tdm.get('frames_per_segment',
                                             frames_per_segment)
            if stdm_frames is None:
                stdm_type = short_term_tdm['type']
                stdm_type = (stdm_type if isinstance(stdm_type, type) else
                             MODELS.get(stdm_type))
                stdm_frames = inspect.signature(stdm_type).parameters[
                    'frames_per_segment'].default
            if frames_per_segment not in (None, stdm_frames):
                raise ValueError(
                    f'{cls.__name__}: frames_per_segment={frames_per_segment}'
                    f' but the S-TDM takes {stdm_frames} frames per segment; '
                    'set one value.')
            frames = stdm_frames
        if not isinstance(frames, int) or frames < 1 or frames % 2 == 0:
            raise ValueError(
                f'{cls.__name__}: frames_per_segment must be a positive odd '
                f'integer (a centre frame must exist), got {frames!r}.')
        return num_segments, frames

    def __init__(self,
                 depth: int,
                 num_segments: int = 8,
                 short_term_tdm: Optional[dict] = DEFAULT_SHORT_TERM_TDM,
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
        super().__init__(
            depth,
            num_segments,
            sampling_cfg=dict(
                short_term_tdm=short_term_tdm,
                frames_per_segment=frames_per_segment),
            pretrained=pretrained,
            **kwargs)
        self.short_term_stages = self._check_short_term_stages(
            short_term_stages if short_term_tdm is not None else ())
        self.long_term_stages = self._check_long_term_stages(
            long_term_stages)

        self.stdm = None
        if short_term_tdm is not None:
            fused = len(self.short_term_stages)
            if short_term_tdm.get('num_fused_stages', fused) != fused:
                raise ValueError(
                    f'{name}: short_term_tdm.num_fused_stages='
                    f"{short_term_tdm['num_fused_stages']} contradicts "
                    f'short_term_stages={tuple(self.short_term_stages)}; set '
                    'only the latter.')
            cfg = copy.deepcopy(short_term_tdm)
            for key, value in dict(
                    num_segments=self.num_segments, depth=depth,
                    num_fused_stages=fused,
                    frames_per_segment=self.frames_per_segment,
                    conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                    act_cfg=self.act_cfg, with_cp=self.with_cp).items():
                cfg.setdefault(key, value)
            self.stdm = MODELS.build(cfg)

        self.long_term_tdm = copy.deepcopy(long_term_tdm)
        self.temporal_module = copy.deepcopy(temporal_module)
        self._attach_long_term_units()
        self.td_blocks = self._resolve_td_blocks(td_blocks)
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

    def _check_td_stage(self, stage: int, indices: List[int]) -> None:
        """TD features are a long-term unit's output."""
        has_unit = self.long_term_tdm is not None or bool(
            _as_cfg_list(self.temporal_module))
        if stage + 2 not in self.long_term_stages or not has_unit:
            raise ValueError(
                f'{type(self).__name__}: `td_blocks[{stage}]` picks blocks '
                f'of layer{stage + 1} (paper stage {stage + 2}), which have '
                'no long-term unit (L-TDM or temporal module) whose '
                f'output could be the TD features (long_term_stages='
                f'{tuple(self.long_term_stages)}). Pick blocks of the '
                'long-term stages or add the stage to long_term_stages.')

    def _attach_long_term_units(self) -> None:
        """Give every block of the long-term stages its L-TDM and temporal
        module(s), built for the block's ``conv1`` output channels."""
        for stage in self.long_term_stages:
            for block in getattr(self, f'layer{stage - 1}'):
                channels = block.conv1.conv.out_channels
                ltdm = self._build_module(
                    self.long_term_tdm, channels,
                    conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg)
                temporal = [
                    self._build_module(cfg, channels)
                    for cfg in _as_cfg_list(self.temporal_module)
                ]
                if not temporal:
                    temporal = None
                elif len(temporal) == 1:
                    temporal = temporal[0]
                else:
                    temporal = nn.Sequential(*temporal)
                block.attach_long_term(ltdm, temporal)

    def _forward_stem(self, x: torch.Tensor) -> Tuple[torch.Tensor, Any]:
        """The stem on the centre frame, fused with the S-TDM's first
        motion features; the rest of them is the state for
        :meth:`_fuse_stage`."""
        start = self.in_channels * (self.frames_per_segment // 2)
        centre = x[:, start:start + self.in_channels]
        motions = self.stdm(x) if self.stdm is not None else []
        x = self.maxpool(self.conv1(centre))
        if motions:
            x = self.stdm.fuse(x, motions[0])
        return x, motions

    def _fuse_stage(self, stage: int, x: torch.Tensor,
                    motions: List[torch.Tensor]) -> torch.Tensor:
        """Fuse the S-TDM's motion features into stages 2-3 if chosen."""
        if stage + 1 < len(motions):
            x = self.stdm.fuse(x, motions[stage + 1])
        return x

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
