# Copyright (c) mmaction_tdx contributors. All rights reserved.
import math

# mmaction_tdx first: its compat fixes make `mmaction.models` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import pytest
import torch
from mmaction.registry import MODELS


def _build(**kwargs):
    return MODELS.build(dict(type='TemporalDiversityLoss', **kwargs))


def _reference(z, num_segments, ratio, loss_weight):
    """Eq. 7 term by term: loops over videos, channels and pairs."""
    n = z.shape[0] // num_segments
    channels = math.floor(ratio * z.shape[1])
    total = z.new_zeros(())
    for v in range(n):
        frames = z[v * num_segments:(v + 1) * num_segments]
        per_video = z.new_zeros(())
        for c in range(channels):
            pairs = [(i, j) for i in range(num_segments)
                     for j in range(num_segments) if i != j]
            sims = [
                torch.cosine_similarity(
                    frames[i, c].flatten(), frames[j, c].flatten(), dim=0)
                for i, j in pairs
            ]
            per_video = per_video + sum(sims) / len(pairs)
        total = total + per_video
    return loss_weight * total / n


@pytest.mark.parametrize('t,c,ratio,weight', [(3, 6, 0.5, 2e-4),
                                              (4, 5, 0.75, 1.0),
                                              (2, 3, 1.0, 0.3)])
def test_matches_reference_value_and_grad(t, c, ratio, weight):
    torch.manual_seed(0)
    z = torch.randn(2 * t, c, 3, 2, dtype=torch.float64)
    # Correlated segments make the cosines large and of both signs.
    z = z + 2 * z[:1].clone() * torch.tensor([1., -1.] * t).view(-1, 1, 1, 1)
    z_ours = z.clone().requires_grad_()
    z_ref = z.clone().requires_grad_()
    loss = _build(num_segments=t, ratio=ratio, loss_weight=weight)(z_ours)
    ref = _reference(z_ref, t, ratio, weight)
    assert loss.dim() == 0
    assert torch.allclose(loss, ref, rtol=1e-10, atol=1e-14)
    loss.backward()
    ref.backward()
    assert torch.allclose(z_ours.grad, z_ref.grad, rtol=1e-8, atol=1e-14)


def test_gradcheck():
    torch.manual_seed(0)
    z = torch.randn(2 * 3, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    loss = _build(num_segments=3, ratio=0.75, loss_weight=1.0)
    assert torch.autograd.gradcheck(loss, (z, ))


def test_defaults_and_float32():
    loss = _build(num_segments=4)
    assert loss.ratio == 0.5 and loss.loss_weight == 2e-4
    z = torch.randn(8, 6, 3, 3)
    value = loss(z)
    assert value.dtype == torch.float32
    assert torch.allclose(value, _reference(z.double(), 4, 0.5, 2e-4).float())


def test_identical_and_opposite_segments():
    z = torch.randn(1, 4, 3, 3).repeat(3, 1, 1, 1)
    assert torch.allclose(
        _build(num_segments=3, ratio=1.0, loss_weight=1.0)(z),
        torch.tensor(4.0))
    z[1] = -z[0]
    # pairs: (0,1),(1,0): -1; (0,2),(2,0): 1; (1,2),(2,1): -1 => -1/3 each
    assert torch.allclose(
        _build(num_segments=3, ratio=0.5, loss_weight=1.0)(z),
        torch.tensor(2 * -1 / 3))


def test_ratio_zero_gives_zero():
    z = torch.randn(6, 4, 2, 2, requires_grad=True)
    value = _build(num_segments=3, ratio=0.0)(z)
    assert value.item() == 0.0
    value.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))


def test_zero_norm_channels_are_finite():
    z = torch.randn(6, 4, 2, 2, dtype=torch.float64)
    z[:, 0] = 0  # a dead channel
    z[1, 1] = 0  # one dead segment of a channel
    z.requires_grad_()
    value = _build(num_segments=3, ratio=1.0, loss_weight=1.0)(z)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(z.grad).all()
    assert torch.equal(z.grad[:, 0], torch.zeros_like(z.grad[:, 0]))
    # A zero vector has cosine 0 with everything (as in
    # torch.cosine_similarity, which the reference uses).
    assert torch.allclose(value, _reference(z.detach(), 3, 1.0, 1.0))


def test_bf16_autocast_computes_in_float32():
    loss = _build(num_segments=4, ratio=1.0, loss_weight=1.0)
    conv = torch.nn.Conv2d(3, 8, 1)
    x = torch.randn(8, 3, 4, 4)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        z = conv(x)
        assert z.dtype == torch.bfloat16
        value = loss(z)
    assert value.dtype == torch.float32
    assert torch.allclose(value, loss(z.float()))
    value.backward()
    assert conv.weight.grad is not None


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match='num_segments.*>= 2'):
        _build(num_segments=1)
    with pytest.raises(ValueError, match=r'ratio.*\[0, 1\]'):
        _build(num_segments=4, ratio=1.5)
    with pytest.raises(ValueError, match=r'ratio.*\[0, 1\]'):
        _build(num_segments=4, ratio=-0.1)
    with pytest.raises(ValueError, match='not a multiple of num_segments=4'):
        _build(num_segments=4)(torch.randn(6, 4, 2, 2))
    with pytest.raises(ValueError, match='needs `num_segments`'):
        _build()(torch.randn(6, 4, 2, 2))
    with pytest.raises(ValueError, match='num_segments.*>= 2'):
        _build()(torch.randn(6, 4, 2, 2), num_segments=1)
    assert _build()(torch.randn(6, 4, 2, 2), num_segments=3).dim() == 0


# The tests below kill mutmut survivors (docs/dev/testing.md names each).
@pytest.mark.parametrize('kwargs,pattern', [
    # a bool is not a ratio, a float is not a segment count (`or` -> `and`
    # in the type checks let them through)
    (dict(num_segments=4, ratio=True), r'ratio.*\[0, 1\], got True'),
    (dict(num_segments=3.0), r'integer >= 2, got 3\.0'),
    (dict(num_segments=True), 'integer >= 2, got True'),
])
def test_adversarial_settings_are_refused(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        _build(**kwargs)


def test_error_messages_name_the_fix():
    """Each message names the problem and the fix verbatim."""
    cases = [
        (lambda: _build(num_segments=4, ratio=2.0),
         'The paper uses 0.5 (Table 5).'),
        (lambda: _build(num_segments=1),
         'TemporalDiversityLoss compares the segments of a video, so '
         '`num_segments` must be an integer >= 2, got 1. Sample at least 2 '
         'segments per video (e.g. `SampleFrames(num_clips=8)`) or remove '
         '`loss_td`.'),
        (lambda: _build()(torch.randn(6, 4)),
         'TemporalDiversityLoss needs `num_segments`: set it in the loss '
         "config (`loss_td=dict(type='TemporalDiversityLoss', "
         'num_segments=8)`) or pass it to the call.'),
        (lambda: _build(num_segments=4)(torch.randn(6, 5)),
         'TemporalDiversityLoss got 6 segment features, which is not a '
         'multiple of num_segments=4. Set `num_segments` to the segments per '
         'video the backbone sees (for multi-view training set it '
         'explicitly in `loss_td`).'),
        (lambda: _build(num_segments=2)(torch.randn(6)),
         'TemporalDiversityLoss expects features of shape (N*T, C, H, W), '
         'got (6,).'),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert message in str(info.value)


def test_pooled_features_without_spatial_dims():
    """``(N*T, C)`` features (no trailing dims) are accepted: each
    channel's "vector" is one value, so its cosines are signs."""
    z = torch.tensor([[1., -2.], [3., 4.], [-1., 5.], [2., -3.]],
                     dtype=torch.float64)
    loss = _build(num_segments=2, ratio=1.0, loss_weight=1.0)
    assert torch.allclose(loss(z), _reference(z[..., None, None], 2, 1.0,
                                              1.0))
    # video 0: channel 0 same sign (+1), channel 1 opposite (-1) -> 0;
    # video 1: channel 0 opposite (-1), channel 1 opposite (-1) -> -2.
    assert loss(z).item() == pytest.approx(-1.0)


def test_norm_equal_to_eps_counts_as_vanishing():
    """``|z| <= eps`` is a vanishing vector (cosine 0), the boundary
    included."""
    z = torch.zeros(2, 1, 1, 2, dtype=torch.float64)
    z[0, 0, 0, 0] = 1.0  # norm exactly eps
    z[1, 0, 0, 0] = 1.0
    loss = _build(num_segments=2, ratio=1.0, loss_weight=1.0, eps=1.0)
    assert loss(z).item() == 0.0
    z[1, 0, 0, 0] = 2.0  # norm above eps, but segment 0 still vanishes
    assert loss(z).item() == 0.0
    z[0, 0, 0, 0] = 1.5
    assert loss(z).item() == pytest.approx(1.0)
