# Copyright (c) mmaction_tdx contributors. All rights reserved.
import itertools

import pytest
import torch
from mmaction.registry import MODELS

import mmaction_tdx  # noqa: F401
from mmaction_tdx.models.common import LongTermTDM


@pytest.fixture(autouse=True)
def _single_thread():
    """The CI machine is small and shared; one thread avoids contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


N, T, C, H, W = 2, 4, 32, 7, 7  # odd size: the half scale must round-trip


def _features(seed=0):
    torch.manual_seed(seed)
    return torch.randn(N * T, C, H, W)


def _reverse_segments(x):
    return x.view(-1, T, *x.shape[1:]).flip(1).reshape(x.shape)


def _ltdm(**options):
    torch.manual_seed(1)
    module = LongTermTDM(C, T, reduction=4, **options)
    # Non-trivial BN statistics and affine parameters.
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return module.eval()


VARIANTS = [
    dict(temporal_operator=op, multi_scale=ms, bidirectional=bi, fusion=fu)
    for op, ms, bi, fu in itertools.product(
        LongTermTDM.temporal_operators, (True, False), (True, False),
        LongTermTDM.fusions)
]


@pytest.mark.parametrize('options', VARIANTS, ids=str)
def test_variant_shapes_and_gradients(options):
    module = _ltdm(**options).train()
    x = _features().requires_grad_()
    out = module(x)
    assert out.shape == x.shape
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, param in module.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_registered_and_defaults_are_the_release():
    module = MODELS.build(
        dict(type='LongTermTDM', in_channels=64, num_segments=8))
    assert (module.reduction, module.temporal_operator) == (16, 'difference')
    assert module.multi_scale and module.bidirectional
    assert module.fusion == 'attention'
    assert not module.backward_full_scale_from_forward
    assert module.squeeze.conv.out_channels == 4
    assert module.align.groups == 4 and module.align.bias is None


def test_release_formula():
    """Eqs. (2), (4)-(6) with the release's sign and nearest upsampling."""
    module = _ltdm()
    x = _features()
    with torch.no_grad():
        s = module.squeeze(x)
        a = module.align(s).view(N, T, -1, H, W)
        s = s.view(N, T, -1, H, W)
        zero = torch.zeros_like(s[:, :1])
        fwd = torch.cat([a[:, 1:] - s[:, :-1], zero], 1).flatten(0, 1)
        bwd = torch.cat([zero, a[:, :-1] - s[:, 1:]], 1).flatten(0, 1)

        def attention(d):
            half = module.half_scale(torch.nn.functional.avg_pool2d(d, 2))
            # nearest: output pixel i reads input pixel floor(i * 3 / 7)
            index = torch.arange(H) * half.shape[-1] // H
            half = half[..., index, :][..., index]
            ms = (d + half + module.full_scale(d)) / 3
            return torch.sigmoid(module.expand(ms)) - 0.5

        y = (attention(fwd) + attention(bwd)) / 2
        expected = x + x * y
        torch.testing.assert_close(module(x), expected, atol=1e-5, rtol=1e-5)


def test_neighbours_only():
    """One L-TDM relates each segment to its direct neighbours only."""
    module = _ltdm()
    x = _features()
    changed = x.clone().view(N, T, C, H, W)
    changed[:, 0] += 1.0
    with torch.no_grad():
        out = module(x).view(N, T, C, H, W)
        out_changed = module(changed.view_as(x)).view(N, T, C, H, W)
    assert not torch.allclose(out[:, 1], out_changed[:, 1])
    torch.testing.assert_close(out[:, 2:], out_changed[:, 2:])


@pytest.mark.parametrize('options', [
    dict(bidirectional=False),
    dict(backward_full_scale_from_forward=True),
])
def test_reversing_segment_order_changes_the_output(options):
    module = _ltdm(**options)
    x = _features()
    with torch.no_grad():
        reversed_out = module(_reverse_segments(x))
        out_reversed = _reverse_segments(module(x))
    assert (reversed_out - out_reversed).abs().max() > 1e-3


def test_bidirectional_is_symmetric_in_time():
    """Forward and backward share all layers and are averaged (Eq. (6)),
    so reversing the segments only reverses the output; the order
    sensitivity of TDN's long-term unit comes from the temporal conv."""
    module = _ltdm()
    x = _features()
    with torch.no_grad():
        torch.testing.assert_close(
            module(_reverse_segments(x)), _reverse_segments(module(x)))


def test_static_segments_give_identity_plus_constant_attention():
    """With identical segments the differences are ``Conv_cw(S) - S``, so a
    temporal *average* and a *difference* differ even for static input."""
    x = _features()[:1].expand(N * T, C, H, W).contiguous()
    diff = _ltdm()(x)
    avg = _ltdm(temporal_operator='average')(x)
    assert diff.shape == avg.shape == x.shape
    assert not torch.allclose(diff, avg)


def test_errors():
    with pytest.raises(ValueError, match='num_segments=4'):
        _ltdm()(torch.randn(6, C, H, W))
    with pytest.raises(ValueError, match='fusion'):
        LongTermTDM(C, T, fusion='mul')
    with pytest.raises(ValueError, match='temporal_operator'):
        LongTermTDM(C, T, temporal_operator='sum')
    with pytest.raises(ValueError, match='reduction'):
        LongTermTDM(8, T, reduction=16)
    with pytest.raises(ValueError, match='multi_scale=True'):
        LongTermTDM(C, T, multi_scale=False,
                    backward_full_scale_from_forward=True)


def test_too_small_feature_maps_name_the_fix():
    import pytest
    import torch

    from mmaction_tdx.models.common.long_term_tdm import LongTermTDM
    module = LongTermTDM(in_channels=32, num_segments=2)
    with pytest.raises(ValueError, match='at least 2x2'):
        module(torch.randn(4, 32, 1, 1))
