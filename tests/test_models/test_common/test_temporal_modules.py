# Copyright (c) mmaction_tdx contributors. All rights reserved.
# mmaction_tdx first: its compat fixes make `mmaction.models` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import pytest
import torch
from mmaction.models.backbones.resnet_tsm import (
    TemporalShift as MMActionTemporalShift,
)
from mmaction.registry import MODELS

from mmaction_tdx.models.common.temporal_modules import (
    ChannelwiseTemporalConv,
    MotionEnhancementModule,
    TemporalShift,
)

N, T, C, H, W = 2, 4, 16, 3, 2


def _features(seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(N * T, C, H, W, generator=gen, dtype=dtype)


@pytest.mark.parametrize('cfg', [
    dict(type='TemporalShift'),
    dict(type='ChannelwiseTemporalConv'),
    dict(type='ChannelwiseTemporalConv', init='random', kernel_size=5),
    dict(type='MotionEnhancementModule', reduction=4),
    dict(type='MotionEnhancementModule', last_segment='zero_diff'),
])
def test_registered_and_shape(cfg):
    cfg = dict(cfg)
    cfg.setdefault('in_channels', C)
    cfg.setdefault('num_segments', T)
    module = MODELS.build(cfg)
    x = _features().requires_grad_()
    out = module(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None
    for param in module.parameters():
        assert param.grad is not None


@pytest.mark.parametrize('shift_div', [8, 3, 4])
def test_shift_matches_mmaction(shift_div):
    x = _features()
    ours = TemporalShift(C, T, shift_div=shift_div)(x)
    ref = MMActionTemporalShift.shift(x, T, shift_div=shift_div)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize('shift_div', [8, 4])
def test_channelwise_conv_shift_init_equals_shift(shift_div):
    x = _features(dtype=torch.float64)
    conv = ChannelwiseTemporalConv(C, T, init='shift', shift_div=shift_div)
    conv.double()
    assert torch.equal(conv(x), TemporalShift(C, T, shift_div)(x))
    x32 = _features()
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


def test_channelwise_conv_identity_init_and_locality():
    x = _features()
    assert torch.equal(ChannelwiseTemporalConv(C, T, init='identity')(x), x)
    # A learned kernel mixes only neighbouring segments of the same video.
    conv = ChannelwiseTemporalConv(C, T, init='random')
    x2 = x.clone()
    x2[1] += 1.0  # video 0, segment 1
    changed = (conv(x2) - conv(x)).abs().flatten(1).amax(1) > 0
    assert changed.tolist() == [True, True, True] + [False] * (N * T - 3)


def test_mem_behaviour():
    torch.manual_seed(0)
    mem = MotionEnhancementModule(C, T, reduction=4)
    x = _features()
    out = mem(x)
    # The last segment of each video passes unchanged.
    last = torch.arange(N) * T + T - 1
    assert torch.equal(out[last], x[last])
    # Segment t is scaled channel-wise by a gate in (0, 1).
    ratio = (out / x).view(N, T, C, H * W)
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio))
    assert ((ratio[:, :-1] > 0) & (ratio[:, :-1] < 1)).all()
    # Attention of segment t depends on segments t and t + 1 only.
    x2 = x.clone()
    x2[2] += 1.0  # video 0, segment 2
    changed = (mem(x2) - out).abs().flatten(1).amax(1) > 0
    assert changed.tolist() == [False, True, True] + [False] * (N * T - 3)


@pytest.mark.parametrize('cls', [
    TemporalShift, ChannelwiseTemporalConv, MotionEnhancementModule
])
def test_bad_input_is_explained(cls):
    module = cls(C, T)
    with pytest.raises(ValueError, match='num_segments=4'):
        module(torch.randn(T + 1, C, H, W))
    with pytest.raises(ValueError, match=r'\(N\*T, C, H, W\)'):
        module(torch.randn(N, T, C, H, W))


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match='kernel_size'):
        ChannelwiseTemporalConv(C, T, kernel_size=2)
    with pytest.raises(ValueError, match='init'):
        ChannelwiseTemporalConv(C, T, init='tsm')
    with pytest.raises(ValueError, match='num_segments'):
        TemporalShift(C, 0)
    with pytest.raises(ValueError, match='reduction'):
        MotionEnhancementModule(C, T, reduction=32)
