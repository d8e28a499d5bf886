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

from .temporal_modules import depthwise_temporal_conv

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


def lerp_upsampled_(target: torch.Tensor, small: torch.Tensor,
                    weight: float) -> torch.Tensor:
    """``target = (1 - weight) * target + weight * up(small)`` in place,
    ``up`` the nearest upsampling to ``target``'s size (see
    :func:`add_upsampled_`; same fallback for non-integer ratios).

    Args:
        target (Tensor): ``(B, C, H, W)``, contiguous; changed in place.
        small (Tensor): ``(B, C, h, w)``.
        weight (float): Weight of the upsampled map.

    Returns:
        Tensor: ``target``.
    """
    b, c, h, w = target.shape
    sh, sw = small.shape[-2:]
    if h % sh == 0 and w % sw == 0 and target.is_contiguous():
        blocks = target.view(b, c, sh, h // sh, sw, w // sw)
        blocks.lerp_(small[:, :, :, None, :, None], weight)
        return target
    upsampled = F.interpolate(small, size=(h, w), mode='nearest')
    return target.lerp_(upsampled, weight)


def avg_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.avg_pool2d(x, kernel_size=2, stride=2)``, faster on CPU.

    For an even-sized contiguous map the pool is two additions of
    strided halves (rows, then columns), which PyTorch vectorises well;
    its generic pooling kernel is about 3x slower for few channels (e.g.
    the 3 of an RGB frame). Other inputs use ``F.avg_pool2d``.

    Args:
        x (Tensor): ``(B, C, H, W)``.

    Returns:
        Tensor: ``(B, C, H // 2, W // 2)``.
    """
    b, c, h, w = x.shape
    if h % 2 or w % 2 or not x.is_contiguous():
        return F.avg_pool2d(x, kernel_size=2, stride=2)
    rows = x.view(b * c * h // 2, 2, w // 2, 2)
    pairs = torch.add(rows[:, 0], rows[:, 1])  # (B*C*H/2, W/2, 2)
    return torch.add(pairs[..., 0], pairs[..., 1]).mul_(0.25).view(
        b, c, h // 2, w // 2)


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


# --------------------------------------------------------------------------
# L-TDM excitation (and the temporal conv after it) in training mode


def excitation_supported(expand: nn.Module) -> bool:
    """Whether :class:`ExcitationFunction` can stand in for ``expand``:
    ``BN(Conv(x))`` with a plain ``BatchNorm2d`` (not e.g. SyncBN) with
    affine parameters and a conv without bias."""
    return (is_foldable_conv_bn(expand) and type(expand.norm) is nn.BatchNorm2d
            and expand.norm.affine and expand.conv.bias is None)


def _running_stat_args(norm: nn.BatchNorm2d):
    """``nn.BatchNorm2d.forward``'s bookkeeping of one training call:
    increments ``num_batches_tracked`` and returns the running buffers and
    the momentum to update them with."""
    if not norm.track_running_stats:
        return None, None, 0.0
    norm.num_batches_tracked.add_(1)
    momentum = norm.momentum
    if momentum is None:  # cumulative moving average
        momentum = 1.0 / float(norm.num_batches_tracked)
    return norm.running_mean, norm.running_var, momentum


def depthwise_temporal_conv_weight_grad(grad: torch.Tensor,
                                        source: torch.Tensor,
                                        kernel_size: int) -> torch.Tensor:
    """Gradient of :func:`~.temporal_modules.depthwise_temporal_conv`'s
    ``(C, k)`` weight, for output gradient ``grad`` and input ``source``,
    both ``(N, T, C, P)``."""
    t, centre = grad.shape[1], kernel_size // 2
    columns = []
    for j in range(kernel_size):
        offset = j - centre
        if abs(offset) >= t:
            columns.append(grad.new_zeros(grad.shape[2]))
        elif offset >= 0:
            columns.append((grad[:, :t - offset] *
                            source[:, offset:]).sum(dim=(0, 1, 3)))
        else:
            columns.append((grad[:, -offset:] *
                            source[:, :t + offset]).sum(dim=(0, 1, 3)))
    return torch.stack(columns, dim=1)


class ExcitationFunction(torch.autograd.Function):
    """TDN's L-TDM excitation (Eq. (2), (6)) from the expand conv on,
    optionally followed by the channel-wise temporal conv, with a
    hand-written backward that stores only the inputs.

    Computes ``z = Conv1x1(r)`` for the combined relation maps ``r`` of
    ``D`` directions, ``s_d = sigmoid(BN_train(z_d))`` (each direction
    normalised with its own batch statistics, the BN's running statistics
    updated once per direction, forward first), the gain
    ``e = 1/2 + (s_1 + s_2) / 2`` (``D = 2``) or ``e = 1/2 + s_1``
    (``D = 1``), i.e. ``x * e = x + x * mean_d(s_d - 1/2)``, and returns
    ``TM(x * e)`` (``TM`` the temporal conv, or the identity).

    Autograd would keep ``z`` (two full-size maps), ``s_d``, the gain and
    ``x * e`` for the backward pass; this keeps only ``x`` (kept anyway by
    the layers before) and the small ``C/r``-channel ``r``, and recomputes
    the rest, which costs one cheap 1x1 conv (``C/r -> C``) more.
    Gradients are those of the plain expression (the BN part via
    PyTorch's own ``native_batch_norm_backward``).
    """

    @staticmethod
    def forward(ctx, x, combined, conv_weight, weight, bias,
                temporal_weight, expand, num_segments):
        """
        Args:
            x (Tensor): ``(N*T, C, H, W)`` block features.
            combined (Tensor): ``(D*N*T, C/r, H', W')`` relation maps,
                direction-major; ``(H', W')`` is ``(H, W)`` or ``(1, 1)``
                (channel attention).
            conv_weight (Tensor): The expand conv's weight.
            weight, bias (Tensor): The BN's affine parameters.
            temporal_weight (Tensor, optional): ``(C, k)`` weight of the
                temporal conv applied to the result.
            expand (ConvModule): The expand conv + BN, whose conv settings
                are used and whose BN's running statistics are updated.
            num_segments (int): ``T``.
        """
        nt = x.shape[0]
        directions = combined.shape[0] // nt
        norm = expand.norm
        z = conv2d_like(expand.conv, combined, conv_weight, None)
        stats, gain = [], None
        for part in z.split(nt):
            running_mean, running_var, momentum = _running_stat_args(norm)
            out, mean, invstd = torch.native_batch_norm(
                part, weight, bias, running_mean, running_var, True,
                momentum, norm.eps)
            stats += [mean, invstd]
            out = out.sigmoid_()
            gain = out if gain is None else gain.add_(out)
        del z
        gain = _gain_from_sum(gain, directions)
        # (Channel attention: gain is (N*T, C, 1, 1) and broadcasts.)
        result = gain.mul_(x) if gain.shape == x.shape else x * gain
        if temporal_weight is not None:
            seq = result.view(nt // num_segments, num_segments,
                              x.shape[1], -1)
            result = depthwise_temporal_conv(seq, temporal_weight).view_as(x)
        ctx.save_for_backward(x, combined, conv_weight, weight, bias,
                              temporal_weight, *stats)
        ctx.expand_conv = expand.conv
        ctx.eps = norm.eps
        ctx.num_segments = num_segments
        return result

    @staticmethod
    def backward(ctx, grad):
        (x, combined, conv_weight, weight, bias, temporal_weight,
         *stats) = ctx.saved_tensors
        nt, t = x.shape[0], ctx.num_segments
        conv = ctx.expand_conv
        relations = combined.split(nt)
        directions = len(relations)
        # Recompute z_d = Conv(r_d) and s_d = sigmoid(BN(z_d)).
        logits, attention = [], []
        for d, part in enumerate(relations):
            mean, invstd = stats[2 * d], stats[2 * d + 1]
            z = conv2d_like(conv, part, conv_weight, None)
            scale = weight * invstd
            shift = bias - mean * scale
            logits.append(z)
            attention.append(
                torch.addcmul(shift[:, None, None], z,
                              scale[:, None, None]).sigmoid_())
        if directions == 2:
            gain = torch.add(attention[0], attention[1]).mul_(0.5).add_(0.5)
        else:
            gain = torch.add(attention[0], 0.5)

        grad_temporal = None
        if temporal_weight is not None:
            shape = (-1, t, x.shape[1], x.shape[2] * x.shape[3])
            grad_seq = grad.reshape(shape)
            if ctx.needs_input_grad[5]:
                grad_temporal = depthwise_temporal_conv_weight_grad(
                    grad_seq, (x * gain).view(shape),
                    temporal_weight.shape[1])
            # The transposed depth-wise conv is the conv with the kernel
            # flipped in time.
            grad = depthwise_temporal_conv(
                grad_seq, temporal_weight.flip(1)).view_as(x)
        grad_x = grad * gain
        del gain
        grad_gain = grad * x
        # Everything below is linear in grad_gain; its factor d gain / d s_d
        # (1/2 for two directions) is applied to the small results only.
        factor = 0.5 if directions == 2 else 1.0

        need_relations, need_conv_weight = ctx.needs_input_grad[1:3]
        grad_relations, grad_conv_weight = [], None
        grad_weight = grad_bias = None
        for d, (part, z, s) in enumerate(zip(relations, logits, attention)):
            grad_logit = s.addcmul_(s, s, value=-1)  # s (1 - s), in place
            if grad_logit.shape == grad_gain.shape:
                grad_logit.mul_(grad_gain)
            else:  # channel attention: s is (N*T, C, 1, 1)
                grad_logit.mul_(grad_gain.sum(dim=(2, 3), keepdim=True))
            g_z, g_w, g_b = torch.ops.aten.native_batch_norm_backward(
                grad_logit, z, weight, None, None, stats[2 * d],
                stats[2 * d + 1], True, ctx.eps, [True, True, True])
            del grad_logit, z
            grad_weight = g_w if grad_weight is None else grad_weight + g_w
            grad_bias = g_b if grad_bias is None else grad_bias + g_b
            if need_relations or need_conv_weight:
                g_r, g_cw, _ = torch.ops.aten.convolution_backward(
                    g_z, part, conv_weight, None, conv.stride,
                    conv.padding, conv.dilation, False, [0, 0],
                    conv.groups, [need_relations, need_conv_weight, False])
                grad_relations.append(g_r)
                if need_conv_weight:
                    grad_conv_weight = g_cw if grad_conv_weight is None \
                        else grad_conv_weight + g_cw
        grad_combined = None
        if need_relations:
            grad_combined = torch.cat(grad_relations).mul_(factor)
        if grad_conv_weight is not None:
            grad_conv_weight = grad_conv_weight * factor
        return (grad_x, grad_combined, grad_conv_weight,
                grad_weight * factor, grad_bias * factor, grad_temporal,
                None, None)


def _gain_from_sum(attention_sum: torch.Tensor,
                   directions: int) -> torch.Tensor:
    """``e`` from ``sum_d s_d`` (see :class:`ExcitationFunction`); in
    place where possible."""
    if directions == 2:
        return attention_sum.mul_(0.5).add_(0.5)
    return attention_sum.add_(0.5)
