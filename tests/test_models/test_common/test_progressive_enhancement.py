# Copyright (c) mmaction_tdx contributors. All rights reserved.
# mmaction_tdx first: its compat fixes make `mmaction.models` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import pytest
import torch
from mmaction.registry import MODELS

from mmaction_tdx.models.common.progressive_enhancement import (
    ProgressiveEnhancementModule,
)

N, T, C, H, W = 2, 5, 32, 3, 2


def _features(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(N * T, C, H, W, generator=gen, dtype=torch.float64)


def _pem(**kwargs):
    torch.manual_seed(0)
    kwargs.setdefault('reduction', 4)
    return ProgressiveEnhancementModule(C, T, **kwargs).double()


def _reference(pem, x):
    """Eq. 3-6 written out one video and one step at a time."""
    out = torch.empty_like(x)
    for v in range(N):
        frames = x[v * T:(v + 1) * T]
        pooled = [frames[t].mean(dim=(1, 2)) for t in range(T)]
        d = [pem.f2(pooled[t + 1]) - pem.f1(pooled[t]) for t in range(T - 1)]
        d.append(torch.ones_like(d[0]) if pem.last_diff ==
                 'ones' else torch.zeros_like(d[0]))
        memory = {
            'last_diff': d[T - 2],
            'first_diff': d[0],
            'zeros': torch.zeros_like(d[0])
        }[pem.memory_init]
        for t in range(T):
            gamma = torch.sigmoid(pem.gate_proj(torch.cat([memory, d[t]])))
            memory = (1 - gamma) * memory + gamma * d[t]
            a = torch.sigmoid(pem.excite(memory))
            out[v * T + t] = frames[t] * a[:, None, None]
    return out


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(memory_init='zeros'),
    dict(memory_init='first_diff', last_diff='zeros'),
    dict(gate='scalar'),
])
def test_pem_matches_equations(kwargs):
    pem = _pem(**kwargs)
    x = _features()
    assert torch.allclose(pem(x), _reference(pem, x), atol=1e-12)


def _changed_segments(pem, x, segment):
    x2 = x.clone()
    x2[segment] += torch.randn_like(x2[segment])
    diff = (pem(x2) - pem(x)).abs().flatten(1).amax(1)
    return [i for i in range(N * T) if diff[i] > 0]


def test_pem_dependencies_follow_the_recurrence():
    x = _features()
    # m_0 = 0: segment s enters d_{s-1} and d_s, hence m_{s-1}, m_s, ...
    # Outputs before s - 1 and the other video stay the same.
    pem = _pem(memory_init='zeros')
    assert _changed_segments(pem, x, 2) == [1, 2, 3, 4]
    assert _changed_segments(pem, x, 0) == [0, 1, 2, 3, 4]
    assert _changed_segments(pem, x, T + 4) == [T + 3, T + 4]
    # Default m_0 = d_{T-1} reads the last two segments, so they reach
    # every output of their video, while segment 2 still reaches only
    # outputs 1 onwards.
    pem = _pem()
    assert _changed_segments(pem, x, T - 1) == list(range(T))
    assert _changed_segments(pem, x, 2) == [1, 2, 3, 4]
    assert _changed_segments(pem, x, T + 1) == list(range(T, 2 * T))


def test_pem_registered_and_backward():
    pem = MODELS.build(
        dict(type='ProgressiveEnhancementModule', in_channels=C,
             num_segments=T))
    assert pem.hidden_channels == C // 16
    x = torch.randn(N * T, C, H, W, requires_grad=True)
    out = pem(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    out.square().sum().backward()
    for name, param in pem.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_pem_bad_settings_are_explained():
    with pytest.raises(ValueError, match='num_segments'):
        ProgressiveEnhancementModule(C, 1)
    with pytest.raises(ValueError, match='memory_init'):
        ProgressiveEnhancementModule(C, T, memory_init='last')
    with pytest.raises(ValueError, match='reduction'):
        ProgressiveEnhancementModule(8, T, reduction=16)
    with pytest.raises(ValueError, match=f'num_segments={T}'):
        ProgressiveEnhancementModule(C, T)(torch.randn(T + 1, C, H, W))
