# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The fast forms of our temporal modules equal the straightforward ones.

Every optimised module is compared with a reference written the plain way
(kept here, or as the module's ``reference_forward``): outputs, input and
parameter gradients, and BN running statistics agree to 1e-5, in eval
and in training mode.
"""
import copy
import math

# mmaction_tdx first: its compat fixes make `mmaction.models` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmaction_tdx.models.common import (
    ChannelwiseTemporalConv,
    LongTermTDM,
    ProgressiveEnhancementModule,
    ShortTermTDM,
)
from mmaction_tdx.models.common.fast_ops import (
    add_upsampled_,
    lerp_upsampled_,
)
from mmaction_tdx.models.losses import TemporalDiversityLoss

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomise_bn(module, seed=3):
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            shape = m.running_mean.shape
            m.running_mean.copy_(torch.rand(shape, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(shape, generator=gen) - 0.5)


def _compare(module, fast, reference, x, train, dtype=torch.float64):
    """Run ``fast`` and ``reference`` on copies of ``module``; compare
    outputs, gradients (input and parameters) and buffers.

    In float64 by default: then float rounding is far below the
    tolerance, also for gradients that are zero up to rounding (e.g. a
    BN bias before a spatial mean), and any mismatch is a real one.
    """
    module, x = module.to(dtype), x.to(dtype)
    ours, ref = module, copy.deepcopy(module)
    ours.train(train)
    ref.train(train)
    x_ours = x.clone().requires_grad_()
    x_ref = x.clone().requires_grad_()
    out_ours, out_ref = fast(ours, x_ours), reference(ref, x_ref)
    torch.testing.assert_close(out_ours, out_ref, **TOL)
    weights = torch.randn_like(out_ref)
    (out_ours * weights).sum().backward()
    (out_ref * weights).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **TOL)
    for (name, p_ours), p_ref in zip(ours.named_parameters(),
                                     ref.parameters()):
        assert (p_ours.grad is None) == (p_ref.grad is None), name
        if p_ref.grad is not None:
            torch.testing.assert_close(
                p_ours.grad, p_ref.grad, **TOL,
                msg=lambda m, name=name: f'{name}: {m}')
    for (name, b_ours), b_ref in zip(ours.named_buffers(), ref.buffers()):
        torch.testing.assert_close(
            b_ours, b_ref, **TOL, msg=lambda m, name=name: f'{name}: {m}')


# --------------------------------------------------------------------------
# ChannelwiseTemporalConv (TIM): shifted multiply-adds vs nn.Conv1d


def _conv1d_reference(module, x, scale=None):
    """The straightforward TIM: segments last, ``nn.Conv1d``, back."""
    n = x.shape[0] // module.num_segments
    nt, c, h, w = x.shape
    t = module.num_segments
    if scale is not None:
        x = (x.view(n, t, c, h * w) * scale[..., None]).view(nt, c, h, w)
    seq = x.view(n, t, c, h * w).permute(0, 3, 2, 1).reshape(n * h * w, c, t)
    out = module.conv(seq).view(n, h * w, c, t)
    return out.permute(0, 3, 2, 1).reshape(nt, c, h, w)


@pytest.mark.parametrize('kernel_size,t', [(3, 4), (5, 4), (5, 2), (3, 1)])
def test_channelwise_conv_equals_conv1d(kernel_size, t):
    module = ChannelwiseTemporalConv(
        6, t, kernel_size=kernel_size, init='random')
    x = torch.randn(2 * t, 6, 3, 5)
    _compare(module, lambda m, x: m(x), _conv1d_reference, x, train=True)


def test_channelwise_conv_scaled_forward_equals_scale_then_conv():
    module = ChannelwiseTemporalConv(6, 4, init='random')
    x = torch.randn(8, 6, 3, 5)
    scale = torch.rand(2, 4, 6, requires_grad=True)
    scale_ref = scale.detach().clone().requires_grad_()
    out = module.scaled_forward(x, scale)
    ref = _conv1d_reference(module, x, scale_ref)
    torch.testing.assert_close(out, ref, **TOL)
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(scale.grad, scale_ref.grad, **TOL)


# --------------------------------------------------------------------------
# PEM folded into TIM (TDRLBlock)


def test_pem_then_tim_fused_equals_sequential():
    pem = ProgressiveEnhancementModule(32, 4, reduction=4)
    tim = ChannelwiseTemporalConv(32, 4, init='random')
    x = torch.randn(8, 32, 5, 3)
    container = nn.ModuleDict(dict(pem=pem, tim=tim))
    _compare(
        container,
        lambda m, x: m['tim'].scaled_forward(x, m['pem'].attention(x)),
        lambda m, x: _conv1d_reference(m['tim'], m['pem'](x)),
        x,
        train=True)


# --------------------------------------------------------------------------
# L-TDM: batched directions, folded BNs, fused excitation


LTDM_OPTIONS = [
    dict(),
    dict(bidirectional=False),
    dict(multi_scale=False),
    dict(temporal_operator='average'),
    dict(fusion='channel_attention'),
]


@pytest.mark.parametrize('options', LTDM_OPTIONS)
@pytest.mark.parametrize('size', [(8, 6), (7, 7)])
@pytest.mark.parametrize('train', [False, True])
def test_ltdm_fast_equals_reference(options, size, train):
    torch.manual_seed(0)
    module = LongTermTDM(32, 4, reduction=4, **options)
    _randomise_bn(module)
    assert module.uses_fast_path()
    x = torch.randn(8, 32, *size)
    _compare(module, lambda m, x: m(x),
             lambda m, x: m.reference_forward(x), x, train)


@pytest.mark.parametrize('train', [False, True])
def test_ltdm_fast_equals_reference_in_float32(train):
    """The release's setting at float32: outputs within 1e-5."""
    module = LongTermTDM(64, 4)
    _randomise_bn(module)
    module.train(train)
    x = torch.randn(8, 64, 14, 14)
    reference = copy.deepcopy(module)
    torch.testing.assert_close(
        module(x), reference.reference_forward(x), **TOL)
    for b_ours, b_ref in zip(module.buffers(), reference.buffers()):
        torch.testing.assert_close(b_ours, b_ref, **TOL)


@pytest.mark.parametrize('options', [dict(), dict(bidirectional=False),
                                     dict(fusion='channel_attention')])
@pytest.mark.parametrize('train', [False, True])
def test_ltdm_then_temporal_conv_fused_equals_sequential(options, train):
    """TDN's long-term unit: L-TDM then the channel-wise temporal conv,
    fused into ``ExcitationFunction`` in training."""
    torch.manual_seed(0)
    container = nn.ModuleDict(
        dict(
            ltdm=LongTermTDM(32, 4, reduction=4, **options),
            tim=ChannelwiseTemporalConv(32, 4, init='random')))
    _randomise_bn(container)
    x = torch.randn(8, 32, 6, 5)
    _compare(
        container,
        lambda m, x: m['ltdm'](x, m['tim']),
        lambda m, x: _conv1d_reference(m['tim'],
                                       m['ltdm'].reference_forward(x)),
        x, train)


@pytest.mark.parametrize('options', LTDM_OPTIONS)
def test_ltdm_inference_mode_equals_reference(options):
    """Without autograd the fast path reuses buffers in place."""
    module = LongTermTDM(32, 4, reduction=4, **options).eval()
    _randomise_bn(module)
    x = torch.randn(8, 32, 6, 6)
    with torch.inference_mode():
        expected = module.reference_forward(x)
        out = module(x)
        fused = module(x, ChannelwiseTemporalConv(32, 4, init='random'))
    torch.testing.assert_close(out, expected, **TOL)
    assert fused.shape == x.shape


def test_ltdm_frozen_bn_in_training_equals_reference():
    """``norm_eval``: BNs in eval mode while gradients flow."""
    module = LongTermTDM(32, 4, reduction=4)
    _randomise_bn(module)
    module.train()
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    x = torch.randn(8, 32, 6, 6)
    out = module(x.requires_grad_())
    ref = module.reference_forward(x)
    torch.testing.assert_close(out, ref, **TOL)
    g_out = torch.autograd.grad(out.sum(), [x, module.expand.conv.weight])
    g_ref = torch.autograd.grad(ref.sum(), [x, module.expand.conv.weight])
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, **TOL)


def test_ltdm_quirk_and_add_fusion_use_the_reference():
    assert not LongTermTDM(
        32, 4, reduction=4,
        backward_full_scale_from_forward=True).uses_fast_path()
    assert not LongTermTDM(32, 4, reduction=4, fusion='add').uses_fast_path()


@pytest.mark.parametrize('small,big', [((3, 4), (6, 8)), ((2, 3), (6, 9)),
                                       ((3, 3), (7, 7))])
def test_add_upsampled_equals_interpolate(small, big):
    target = torch.randn(2, 3, *big)
    low = torch.randn(2, 3, *small)
    expected = target + 0.25 * F.interpolate(low, size=big, mode='nearest')
    torch.testing.assert_close(
        add_upsampled_(target.clone(), low, alpha=0.25), expected)
    torch.testing.assert_close(
        lerp_upsampled_(target.clone(), low, 0.25),
        0.75 * target + 0.25 * F.interpolate(low, size=big, mode='nearest'))


# --------------------------------------------------------------------------
# S-TDM: pool before differencing, fuse without an upsampled copy


def _stdm_reference(module, frames):
    """Differences at full resolution, then pooled (Eq. (3) as written)."""
    motion = F.avg_pool2d(module.motion_input(frames), 2, 2)
    motion = module.maxpool(module.stem(motion))
    outs = [motion]
    for name in module.res_layers:
        motion = getattr(module, name)(motion)
        outs.append(motion)
    return torch.cat([o.flatten(1) for o in outs], 1)


def _fuse_reference(module, rgb, motion):
    motion = F.interpolate(motion, size=rgb.shape[-2:], mode='nearest')
    if module.fusion == 'add':
        return rgb + motion
    alpha, beta = module.fusion_weights
    return alpha * rgb + beta * motion


@pytest.mark.parametrize('input_mode', ['difference', 'frames'])
@pytest.mark.parametrize('size', [32, 35])
def test_stdm_forward_equals_difference_then_pool(input_mode, size):
    torch.manual_seed(0)
    module = ShortTermTDM(4, depth=18, input_mode=input_mode)
    _randomise_bn(module)
    frames = torch.randn(8, 5, 3, size, size)
    _compare(module,
             lambda m, f: torch.cat([o.flatten(1) for o in m(f)], 1),
             _stdm_reference, frames, train=True)


@pytest.mark.parametrize('fusion', ['weighted_add', 'add', (0.3, 0.5)])
@pytest.mark.parametrize('sizes', [((8, 8), (4, 4)), ((7, 7), (4, 4)),
                                   ((8, 8), (8, 8))])
def test_stdm_fuse_equals_interpolate_then_add(fusion, sizes):
    if isinstance(fusion, tuple):  # weights not summing to 1
        module = ShortTermTDM(4, depth=18, fusion_weights=fusion)
    else:
        module = ShortTermTDM(4, depth=18, fusion=fusion)
    rgb = torch.randn(8, 16, *sizes[0], requires_grad=True)
    motion = torch.randn(8, 16, *sizes[1], requires_grad=True)
    out = module.fuse(rgb, motion)
    ref = _fuse_reference(module, rgb, motion)
    torch.testing.assert_close(out, ref, **TOL)
    grads = torch.autograd.grad((out * ref.detach()).sum(), [rgb, motion])
    ref_grads = torch.autograd.grad((ref * ref.detach()).sum(),
                                    [rgb, motion])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, **TOL)
    with torch.no_grad():  # inference: rgb is updated in place
        expected = _fuse_reference(module, rgb, motion)
        torch.testing.assert_close(
            module.fuse(rgb.detach().clone(), motion), expected, **TOL)


# --------------------------------------------------------------------------
# TD loss: no unit vectors stored


def _td_loss_reference(z, num_segments, ratio, eps=1e-12):
    """Eq. 7 with the unit vectors materialised (the straightforward
    vectorised form)."""
    channels = math.floor(ratio * z.shape[1])
    n = z.shape[0] // num_segments
    z = z[:, :channels].reshape(n, num_segments, channels, -1)
    norm = torch.linalg.vector_norm(z, dim=-1, keepdim=True)
    unit = torch.where(norm > eps, z / torch.where(
        norm > eps, norm, torch.ones_like(norm)), torch.zeros_like(z))
    pair_sum = (unit.sum(dim=1).square().sum(dim=-1) -
                unit.square().sum(dim=(1, 3)))
    return pair_sum.sum(dim=1).mean() / (num_segments * (num_segments - 1))


def test_td_loss_equals_materialised_form():
    z = torch.randn(16, 12, 5, 5)
    z[3, 1] = 0  # a vanishing channel
    loss = TemporalDiversityLoss(num_segments=8, ratio=0.5, loss_weight=1.)
    _compare(nn.Identity(), lambda m, z: loss(z),
             lambda m, z: _td_loss_reference(z, 8, 0.5), z, train=True)
