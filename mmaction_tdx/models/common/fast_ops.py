# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Small building blocks that save passes over large feature maps.

On a CPU (and mostly on a GPU too) the elementwise work around TDN's
cheap convolutions is bound by memory traffic, not arithmetic: every
intermediate full-size tensor costs a write and a read. These helpers
compute the same values as the straightforward PyTorch expressions they
replace (up to float rounding) while writing fewer such tensors.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmcv.cnn.bricks.wrappers import Conv2d as MMCVConv2d

# Convolutions whose forward is exactly ``F.conv2d`` with their settings
# (MMCV's wrapper only adds support for empty batches).
PLAIN_CONV2D_TYPES = (nn.Conv2d, MMCVConv2d)


def add_upsampled_(target: torch.Tensor,
                   small: torch.Tensor,
                   alpha: float = 1.0) -> torch.Tensor:
    """``target += alpha * F.interpolate(small, target's size, 'nearest')``.

    When the size ratio is an integer in both directions, nearest
    upsampling repeats each value in an ``f_h x f_w`` block, so ``small``
    is broadcast into a block view of ``target`` and the upsampled map is
    never written. Other sizes (e.g. 3 -> 7) fall back to
    ``F.interpolate``.

    Args:
        target (Tensor): ``(B, C, H, W)``, contiguous; changed in place.
        small (Tensor): ``(B, C, h, w)`` with ``h <= H`` and ``w <= W``.
        alpha (float): Factor of the added map.

    Returns:
        Tensor: ``target``.
    """
    b, c, h, w = target.shape
    sh, sw = small.shape[-2:]
    if h % sh == 0 and w % sw == 0 and target.is_contiguous():
        fh, fw = h // sh, w // sw
        blocks = target.view(b, c, sh, fh, sw, fw)
        blocks.add_(small[:, :, :, None, :, None], alpha=alpha)
        return target
    upsampled = F.interpolate(small, size=(h, w), mode='nearest')
    return target.add_(upsampled, alpha=alpha)


def is_foldable_conv_bn(module: nn.Module) -> bool:
    """Whether ``module`` is a ``ConvModule`` computing exactly
    ``BN(Conv2d(x))`` (no activation, plain conv, a BatchNorm norm)."""
    return (isinstance(module, ConvModule)
            and type(module.conv) in PLAIN_CONV2D_TYPES
            and module.conv.padding_mode == 'zeros' and module.with_norm
            and isinstance(module.norm, nn.modules.batchnorm._BatchNorm)
            and not module.with_activation
            and tuple(module.order[:2]) == ('conv', 'norm')
            and not module.with_explicit_padding)


def folded_conv_bn(module: ConvModule,
                   scale: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one conv equal to ``scale * BN(Conv(x))`` with
    the BN in eval mode (its running statistics).

    Args:
        module (ConvModule): A module for which
            :func:`is_foldable_conv_bn` holds, its norm in eval mode.
        scale (float): Factor folded in as well.

    Returns:
        tuple[Tensor, Tensor]: ``weight`` (the conv's shape) and ``bias``
        ``(C_out,)``.
    """
    conv, bn = module.conv, module.norm
    std = torch.sqrt(bn.running_var + bn.eps)
    gain = bn.weight / std if bn.affine else 1 / std
    shift = bn.bias if bn.affine else torch.zeros_like(std)
    bias = shift - bn.running_mean * gain
    if conv.bias is not None:
        bias = bias + conv.bias * gain
    weight = conv.weight * (scale * gain).view(-1, 1, 1, 1)
    return weight, scale * bias


def conv2d_like(module: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``module``'s convolution of ``x`` with other weights."""
    return F.conv2d(x, weight, bias, module.stride, module.padding,
                    module.dilation, module.groups)
