# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TDN's short-term temporal difference module (S-TDM), Sec. 3.2.

A light, low-resolution CNN on the RGB differences around each segment's
centre frame supplies the single-frame RGB path with local motion (Eqs. (1)
and (3)). The default is the official release (``MCG-NJU/TDN``,
``ops/tdn_net.py``, ``TDN_Net``); the paper's variants are options.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.models.backbones.resnet import ResNet, make_res_layer
from mmaction.registry import MODELS
from mmaction.utils import ConfigType, OptConfigType
from mmcv.cnn import ConvModule, fuse_conv_bn
from mmengine.model import BaseModule

from .temporal_modules import check_positive_int

# Release rule (``tdn_net``): (alpha, beta) = (0.5, 0.5) for 8 segments,
# (0.75, 0.25) for any other segment count.
RELEASE_WEIGHTS_8_SEGMENTS = (0.5, 0.5)
RELEASE_WEIGHTS_OTHER = (0.75, 0.25)


def release_fusion_weights(num_segments: int) -> Tuple[float, float]:
    """The release's ``(alpha, beta)`` of ``alpha * F + beta * H``."""
    if num_segments == 8:
        return RELEASE_WEIGHTS_8_SEGMENTS
    return RELEASE_WEIGHTS_OTHER


@MODELS.register_module()
class ShortTermTDM(BaseModule):
    """Short-term temporal difference module (S-TDM) of TDN (Sec. 3.2).

    For each segment with frames ``I_1..I_L`` (``L = frames_per_segment``,
    centre ``I_c``) the motion path computes (Eq. (3))

    ``H = MaxPool3x3/2(ReLU(BN(Conv7x7/2(AvgPool2x2(D)))))``,

    ``D = [I_2 - I_1, ..., I_L - I_{L-1}]`` stacked on channels
    (``3 (L - 1)`` channels, 12 for ``L = 5``), i.e. at 1/8 of the input
    resolution, and then runs its own copies of the ResNet stages
    ``layer1, ...`` (one per further fused stage). :meth:`fuse` merges a
    motion feature into the RGB feature of the same stage after nearest
    upsampling (Eq. (1)); the backbone calls it after the RGB stem's
    max-pool (stage 1), after ``layer1`` (stage 2), and so on.

    Args:
        num_segments (int): ``T``; selects the release's fusion weights.
        depth (int): ResNet depth, for the block type and block counts of
            the motion path's stages. Defaults to 50.
        frames_per_segment (int): ``L`` frames per segment, odd, >= 3.
            Defaults to 5 (release).
        input_mode (str): ``'difference'`` (default) stacks the ``L - 1``
            differences of adjacent frames; ``'frames'`` stacks the ``L``
            frames themselves (Table 1(a), "concat").
        num_fused_stages (int): Stages fused: 1 = after the stem only, 2 =
            stem and ``layer1`` (release, Table 1(d) "Stage 1-2"), 3 = up to
            ``layer2``. Defaults to 2.
        fusion (str): ``'weighted_add'`` (release): ``alpha * F + beta *
            H``; ``'add'`` (paper, Eq. (1)): ``F + H``; ``'mul'``:
            ``F * sigmoid(H)``; ``'mul_add'``: ``F + F * sigmoid(H)``;
            ``'channel_mul'``: ``F * sigmoid(GAP(H))``;
            ``'channel_mul_add'``: ``F + F * sigmoid(GAP(H))``
            (Table 1(b); the paper does not say how ``H`` becomes an
            attention map: we use a sigmoid, as TEINet and TEA do).
        fusion_weights (tuple[float, float], optional): ``(alpha, beta)``
            for ``'weighted_add'``. Defaults to None: the release's rule,
            (0.5, 0.5) for ``T = 8`` and (0.75, 0.25) otherwise.
        stem_channels (int): Output channels of the motion stem; must equal
            those of the RGB stem. Defaults to 64.
        conv_cfg, norm_cfg, act_cfg (dict): Layer configs, as in ResNet.
        with_cp (bool): Gradient checkpointing in the residual blocks.
        init_cfg (dict, optional): MMEngine init config. Defaults to None.

    Shape:
        :meth:`forward`: ``(N*T, 3 L, H, W)`` frames -> list of
        ``num_fused_stages`` motion features, the first
        ``(N*T, 64, H/8, W/8)``.
        :meth:`fuse`: ``(N*T, C, h, w)`` and ``(N*T, C, h', w')`` ->
        ``(N*T, C, h, w)``.
    """

    input_modes = ('difference', 'frames')
    fusions = ('weighted_add', 'add', 'mul', 'mul_add', 'channel_mul',
               'channel_mul_add')

    def __init__(self,
                 num_segments: int,
                 depth: int = 50,
                 frames_per_segment: int = 5,
                 input_mode: str = 'difference',
                 num_fused_stages: int = 2,
                 fusion: str = 'weighted_add',
                 fusion_weights: Optional[Sequence[float]] = None,
                 stem_channels: int = 64,
                 conv_cfg: ConfigType = dict(type='Conv'),
                 norm_cfg: ConfigType = dict(type='BN2d', requires_grad=True),
                 act_cfg: ConfigType = dict(type='ReLU', inplace=True),
                 with_cp: bool = False,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        check_positive_int(num_segments, 'num_segments', name)
        check_positive_int(frames_per_segment, 'frames_per_segment', name,
                           minimum=3)
        if frames_per_segment % 2 == 0:
            raise ValueError(
                f'{name}: `frames_per_segment` must be odd so that a centre '
                f'frame exists, got {frames_per_segment}. The release uses '
                '5.')
        if depth not in ResNet.arch_settings:
            raise ValueError(f'{name}: unsupported ResNet depth {depth}; '
                             f'use one of {sorted(ResNet.arch_settings)}.')
        check_positive_int(num_fused_stages, 'num_fused_stages', name)
        if num_fused_stages > 5:
            raise ValueError(
                f'{name}: a ResNet has 5 stages (stem and layer1-4), so '
                f'num_fused_stages must be <= 5, got {num_fused_stages}.')
        if input_mode not in self.input_modes:
            raise ValueError(f'{name}: `input_mode` must be one of '
                             f'{self.input_modes}, got {input_mode!r}.')
        if fusion not in self.fusions:
            raise ValueError(f'{name}: `fusion` must be one of '
                             f'{self.fusions}, got {fusion!r}.')
        if fusion_weights is not None:
            if fusion != 'weighted_add':
                raise ValueError(
                    f'{name}: `fusion_weights` only applies to '
                    f'fusion="weighted_add", got fusion={fusion!r}.')
            if len(fusion_weights) != 2:
                raise ValueError(
                    f'{name}: `fusion_weights` must be (alpha, beta), got '
                    f'{fusion_weights!r}.')
            fusion_weights = tuple(float(w) for w in fusion_weights)
        elif fusion == 'weighted_add':
            fusion_weights = release_fusion_weights(num_segments)

        self.num_segments = num_segments
        self.depth = depth
        self.frames_per_segment = frames_per_segment
        self.input_mode = input_mode
        self.num_fused_stages = num_fused_stages
        self.fusion = fusion
        self.fusion_weights = fusion_weights

        frames_stacked = frames_per_segment if input_mode == 'frames' \
            else frames_per_segment - 1
        self.in_channels = 3 * frames_stacked
        self.stem = ConvModule(
            self.in_channels,
            stem_channels,
            kernel_size=7,
            stride=2,
            padding=3,
            bias=False,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        block, stage_blocks = ResNet.arch_settings[depth]
        self.res_layers: List[str] = []
        inplanes = stem_channels
        for i in range(num_fused_stages - 1):
            planes = 64 * 2**i
            layer = make_res_layer(
                block,
                inplanes,
                planes,
                stage_blocks[i],
                stride=1 if i == 0 else 2,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                with_cp=with_cp)
            inplanes = planes * block.expansion
            # Same names as the RGB path, so ImageNet weights map 1:1.
            self.add_module(f'layer{i + 1}', layer)
            self.res_layers.append(f'layer{i + 1}')

    def motion_input(self, frames: torch.Tensor) -> torch.Tensor:
        """Stack the segment's frame differences (or frames) on channels.

        Args:
            frames (Tensor): ``(N*T, 3 L, H, W)``, frame ``I_l`` in
                channels ``[3 (l - 1), 3 l)``.

        Returns:
            Tensor: ``D``, ``(N*T, 3 (L - 1), H, W)`` for ``'difference'``
            with channel order ``[I_2 - I_1, I_3 - I_2, ...]`` as in the
            release; the frames themselves for ``'frames'``.
        """
        if self.input_mode == 'difference':
            return frames[:, 3:] - frames[:, :-3]
        return frames

    def forward(self, frames: torch.Tensor) -> List[torch.Tensor]:
        """Compute the motion features ``H`` of every fused stage (Eq. (3)).

        Args:
            frames (Tensor): ``(N*T, 3 L, H, W)``, the ``L`` frames of each
                segment stacked on channels.

        Returns:
            list[Tensor]: ``num_fused_stages`` tensors; the first is
            ``(N*T, 64, H/8, W/8)``, then the outputs of the motion path's
            ``layer1``, ``layer2``, ...
        """
        # Low-resolution processing: differences are sparse (Sec. 3.2).
        motion = F.avg_pool2d(
            self.motion_input(frames), kernel_size=2, stride=2)
        motion = self.maxpool(self.stem(motion))
        outs = [motion]
        for layer_name in self.res_layers:
            motion = getattr(self, layer_name)(motion)
            outs.append(motion)
        return outs

    def fuse(self, rgb: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """Fuse a motion feature into the RGB feature of the same stage
        (Eq. (1) and the Table 1(b) variants).

        Args:
            rgb (Tensor): ``F``, ``(N*T, C, h, w)``.
            motion (Tensor): ``H``, ``(N*T, C, h', w')``; upsampled to
                ``(h, w)`` with nearest interpolation (release).

        Returns:
            Tensor: a new ``(N*T, C, h, w)`` tensor; ``rgb`` and ``motion``
            are left as they are.
        """
        if motion.shape[:2] != rgb.shape[:2]:
            raise ValueError(
                f'{type(self).__name__}: cannot fuse motion features of '
                f'shape {tuple(motion.shape)} into RGB features of shape '
                f'{tuple(rgb.shape)}; batch and channels must match.')
        if self.fusion in ('channel_mul', 'channel_mul_add'):
            motion = F.adaptive_avg_pool2d(motion, 1)
        else:
            motion = F.interpolate(motion, size=rgb.shape[-2:], mode='nearest')
        if self.fusion == 'weighted_add':
            alpha, beta = self.fusion_weights
            return torch.add(alpha * rgb, motion, alpha=beta)
        if self.fusion == 'add':
            return rgb + motion
        attention = torch.sigmoid(motion)
        if self.fusion in ('mul', 'channel_mul'):
            return rgb * attention
        return torch.addcmul(rgb, rgb, attention)

    def switch_to_deploy(self) -> None:
        """Fold every eval-mode BN into the conv before it, in place (a
        one-time reparameterisation for inference, the same function with
        the BNs' running statistics; do not train the module further)."""
        fuse_conv_bn(self)

    def extra_repr(self) -> str:
        return (f'num_segments={self.num_segments}, '
                f'frames_per_segment={self.frames_per_segment}, '
                f'input_mode={self.input_mode!r}, '
                f'num_fused_stages={self.num_fused_stages}, '
                f'fusion={self.fusion!r}, '
                f'fusion_weights={self.fusion_weights}')
