# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Temporal modules against independent statements of their equations:
MMAction2's own TSM shift, ``F.conv1d`` over the segment axis, and TEINet's
MEM written with ``F.linear`` on the module's parameters."""
# mmaction_tdx first: its compat fixes make `mmaction.models` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import pytest
import torch
import torch.nn.functional as F
from mmaction.models.backbones.resnet_tsm import (
    TemporalShift as MMActionTemporalShift,
)
from mmaction.registry import MODELS
from tdn_reference import mem_reference

from mmaction_tdx.models.common.temporal_modules import (
    ChannelwiseTemporalConv,
    MotionEnhancementModule,
    TemporalShift,
)

N, T, C, H, W = 2, 4, 16, 3, 2


def _features(seed=0, dtype=torch.float64, t=T):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(N * t, C, H, W, generator=gen, dtype=dtype)


def conv1d_reference(x, weight, t):
    """``nn.Conv1d(C, C, k, padding=k // 2, groups=C)`` along ``T`` at every
    spatial position: the TIM / TDN temporal conv, Eq. of TEINet."""
    nt, c, h, w = x.shape
    seq = x.view(-1, t, c, h * w).permute(0, 3, 2, 1).reshape(-1, c, t)
    out = F.conv1d(seq, weight, padding=weight.shape[-1] // 2, groups=c)
    return out.view(-1, h * w, c, t).permute(0, 3, 2, 1).reshape(nt, c, h, w)


@pytest.mark.parametrize('cfg', [
    dict(type='TemporalShift'),
    dict(type='ChannelwiseTemporalConv'),
    dict(type='ChannelwiseTemporalConv', init='random', kernel_size=5),
    dict(type='MotionEnhancementModule', reduction=4),
    dict(type='MotionEnhancementModule', last_segment='zero_diff'),
])
def test_registered_shape_gradients_and_untouched_input(cfg):
    cfg = dict(cfg)
    cfg.setdefault('in_channels', C)
    cfg.setdefault('num_segments', T)
    module = MODELS.build(cfg).double()
    x = _features().requires_grad_()
    before = x.detach().clone()
    out = module(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None
    for param in module.parameters():
        assert param.grad is not None
    assert torch.equal(x.detach(), before)


@pytest.mark.parametrize('shift_div', [8, 3, 4])
def test_shift_matches_mmaction(shift_div):
    x = _features()
    ours = TemporalShift(C, T, shift_div=shift_div)(x)
    ref = MMActionTemporalShift.shift(x, T, shift_div=shift_div)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize('kernel_size,t', [(3, T), (5, T), (5, 2), (3, 1)])
def test_channelwise_conv_is_a_conv1d_over_segments(kernel_size, t):
    """Random (asymmetric) kernels: swapping the neighbours, dropping a tap
    or leaking across videos fails here. ``t < k // 2`` checks the ends."""
    torch.manual_seed(0)
    module = ChannelwiseTemporalConv(
        C, t, kernel_size=kernel_size, init='random').double()
    x = _features(t=t)
    torch.testing.assert_close(
        module(x), conv1d_reference(x, module.conv.weight, t),
        rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('shift_div', [8, 4])
def test_channelwise_conv_shift_init_equals_shift(shift_div):
    x = _features()
    conv = ChannelwiseTemporalConv(C, T, init='shift', shift_div=shift_div)
    assert torch.equal(conv.double()(x), TemporalShift(C, T, shift_div)(x))
    x32 = _features(dtype=torch.float32)
    conv32 = ChannelwiseTemporalConv(C, T, shift_div=shift_div)
    assert torch.equal(conv32(x32), TemporalShift(C, T, shift_div)(x32))


def test_channelwise_conv_weight_layout():
    conv = ChannelwiseTemporalConv(C, T)
    assert isinstance(conv.conv, torch.nn.Conv1d)
    assert conv.conv.weight.shape == (C, 1, 3)
    assert conv.conv.bias is None
    fold = C // 8
    w = conv.conv.weight[:, 0]
    assert torch.equal(w[:fold], torch.tensor([[0., 0., 1.]]).expand(fold, 3))
    assert torch.equal(w[fold:2 * fold],
                       torch.tensor([[1., 0., 0.]]).expand(fold, 3))
    assert torch.equal(w[2 * fold:],
                       torch.tensor([[0., 1., 0.]]).expand(C - 2 * fold, 3))


def test_channelwise_conv_identity_init():
    x = _features(dtype=torch.float32)
    assert torch.equal(ChannelwiseTemporalConv(C, T, init='identity')(x), x)


@pytest.mark.parametrize('last_segment', ['identity', 'zero_diff'])
def test_mem_equations(last_segment):
    torch.manual_seed(0)
    mem = MotionEnhancementModule(
        C, T, reduction=4, last_segment=last_segment).double()
    x = _features()
    torch.testing.assert_close(
        mem(x),
        mem_reference(mem, x, T, last_segment=last_segment),
        rtol=1e-12, atol=1e-12)


def test_mem_behaviour():
    torch.manual_seed(0)
    mem = MotionEnhancementModule(C, T, reduction=4)
    x = _features(dtype=torch.float32)
    out = mem(x)
    last = torch.arange(N) * T + T - 1
    assert torch.equal(out[last], x[last])
    # Attention of segment t depends on segments t and t + 1 only.
    x2 = x.clone()
    x2[2] += 1.0  # video 0, segment 2
    changed = (mem(x2) - out).abs().flatten(1).amax(1) > 0
    assert changed.tolist() == [False, True, True] + [False] * (N * T - 3)


@pytest.mark.parametrize('cls', [
    TemporalShift, ChannelwiseTemporalConv, MotionEnhancementModule
])
def test_bad_input_is_explained_at_the_backbone_entry(cls):
    """The modules trust the ``(N*T, C, H, W)`` layout; the backbone that
    holds them checks it once, at its entry, naming the fix."""
    backbone = MODELS.build(
        dict(type='ResNetTDRL', depth=18, num_segments=T,
             enhancement_module=None, temporal_module=dict(type=cls.__name__)))
    assert isinstance(backbone.layer1[0].temporal, cls)
    with pytest.raises(ValueError, match='num_segments=4'):
        backbone(torch.randn(T + 1, 3, 32, 32))
    with pytest.raises(ValueError, match=r'\(N\*T, 3, H, W\).*x\.view'):
        backbone(torch.randn(N, T, 3, 32, 32))


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match='kernel_size'):
        ChannelwiseTemporalConv(C, T, kernel_size=2)
    with pytest.raises(ValueError, match='init'):
        ChannelwiseTemporalConv(C, T, init='tsm')
    with pytest.raises(ValueError, match='num_segments'):
        TemporalShift(C, 0)
    with pytest.raises(ValueError, match='reduction'):
        MotionEnhancementModule(C, T, reduction=32)
