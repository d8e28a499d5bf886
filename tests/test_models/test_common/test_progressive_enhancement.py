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


def pem_reference(params, x, num_segments, memory_init='last_diff',
                  last_diff='ones'):
    """Eq. 3-6 of TDRL written out one video and one step at a time, on
    raw parameters (``params``: the state dict of a PEM), independently of
    the module's layers.
    """
    def relu(v):
        return torch.where(v > 0, v, torch.zeros_like(v))

    def sigmoid(v):
        return 1 / (1 + torch.exp(-v))

    w1, b1 = params['f1.0.weight'], params['f1.0.bias']
    w2, b2 = params['f2.0.weight'], params['f2.0.bias']
    wg, bg = params['gate_proj.weight'], params['gate_proj.bias']
    wa, ba = params['excite.weight'], params['excite.bias']
    t_count = num_segments
    out = torch.empty_like(x)
    for v in range(x.shape[0] // t_count):
        frames = x[v * t_count:(v + 1) * t_count]
        # GAP over H, W of each frame: x_t in R^C.
        pooled = [frames[t].sum(dim=(1, 2)) / frames[t][0].numel()
                  for t in range(t_count)]
        # Eq. 4: d_t = f2(x_{t+1}) - f1(x_t), f = ReLU(W x + b).
        d = [relu(w2 @ pooled[t + 1] + b2) - relu(w1 @ pooled[t] + b1)
             for t in range(t_count - 1)]
        d.append(torch.full_like(d[0], 1.0 if last_diff == 'ones' else 0.0))
        memory = {
            'last_diff': d[t_count - 2],
            'first_diff': d[0],
            'zeros': torch.zeros_like(d[0])
        }[memory_init]
        for t in range(t_count):
            # Eq. 5: gamma = sigmoid(W_g [m_{t-1} || d_t]).
            gamma = sigmoid(wg @ torch.cat([memory, d[t]]) + bg)
            memory = (1 - gamma) * memory + gamma * d[t]
            a = sigmoid(wa @ memory + ba)  # Eq. 6
            out[v * t_count + t] = frames[t] * a[:, None, None]  # Eq. 3
    return out


def _reference(pem, x):
    return pem_reference(pem.state_dict(), x, pem.num_segments,
                         pem.memory_init, pem.last_diff)


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(memory_init='zeros'),
    dict(memory_init='first_diff', last_diff='zeros'),
    dict(gate='scalar'),
])
def test_pem_matches_equations(kwargs):
    pem = _pem(**kwargs)
    _randomise(pem)
    x = _features()
    assert torch.allclose(pem(x), _reference(pem, x), atol=1e-12)


def _randomise(pem):
    """Weights large enough that the ReLUs of f1/f2 cut (about half of the
    pre-activations negative) and the sigmoids are far from linear."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in pem.parameters():
            param.copy_(torch.randn(param.shape, generator=gen,
                                    dtype=param.dtype))


def test_pem_relus_and_gates_matter():
    """The reference would tell a PEM without its ReLUs (or without the
    gate) from the real one: those changes move the output."""
    pem = _pem()
    _randomise(pem)
    x = _features()
    params = pem.state_dict()
    w1, b1 = params['f1.0.weight'], params['f1.0.bias']
    pre = x.view(N, T, C, -1).mean(3) @ w1.T + b1
    assert (pre < 0).float().mean() > 0.2
    linear = _pem()
    linear.load_state_dict(params)
    linear.f1[1] = torch.nn.Identity()
    linear.f2[1] = torch.nn.Identity()
    assert not torch.allclose(linear(x), _reference(pem, x), atol=1e-6)


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
    # The layout is checked once, at the entry of the backbone holding PEM.
    backbone = MODELS.build(dict(type='ResNetTDRL', depth=18, num_segments=T))
    with pytest.raises(ValueError, match=f'num_segments={T}'):
        backbone(torch.randn(T + 1, 3, 32, 32))
