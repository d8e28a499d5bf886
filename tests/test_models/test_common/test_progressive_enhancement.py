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
                  last_diff='ones', gate='channel', reduction=16):
    """Eq. 3-6 of TDRL written out one video and one step at a time, on
    raw parameters (``params``: the state dict of a PEM), independently of
    the module's layers.

    Every parameter's shape is checked against the one the equations and
    the options give (``C`` from ``x``, ``C / r`` from ``reduction``, one
    gate per reduced channel or one per segment from ``gate``), so a
    module that builds a layer of another size cannot lend it to the
    reference.
    """
    def relu(v):
        return torch.where(v > 0, v, torch.zeros_like(v))

    def sigmoid(v):
        return 1 / (1 + torch.exp(-v))

    channels = x.shape[1]
    hidden = channels // reduction
    gates = {'channel': hidden, 'scalar': 1}[gate]
    expected = pem_param_shapes(channels, reduction, gate)
    shapes = {k: tuple(v.shape) for k, v in params.items()}
    assert shapes == expected, (shapes, expected)
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
            assert gamma.shape == (gates, )
            memory = (1 - gamma) * memory + gamma * d[t]
            assert memory.shape == (hidden, )
            a = sigmoid(wa @ memory + ba)  # Eq. 6
            out[v * t_count + t] = frames[t] * a[:, None, None]  # Eq. 3
    return out


def pem_param_shapes(channels, reduction, gate):
    """The parameter shapes Eq. 4-6 give for ``C`` channels, ratio ``r``
    and the gate option (one gate per reduced channel or per segment)."""
    hidden = channels // reduction
    gates = {'channel': hidden, 'scalar': 1}[gate]
    return {
        'f1.0.weight': (hidden, channels), 'f1.0.bias': (hidden, ),
        'f2.0.weight': (hidden, channels), 'f2.0.bias': (hidden, ),
        'gate_proj.weight': (gates, 2 * hidden), 'gate_proj.bias': (gates, ),
        'excite.weight': (channels, hidden), 'excite.bias': (channels, ),
    }


def random_pem_params(channels, reduction, gate, seed=1):
    """Raw parameters of the shapes the equations give, drawn by the test
    (not read from a module): large enough that the ReLUs of f1/f2 cut
    and the sigmoids are far from linear."""
    gen = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(shape, generator=gen, dtype=torch.float64)
        for name, shape in pem_param_shapes(channels, reduction,
                                            gate).items()
    }


def _reference(pem, x):
    """The reference on ``pem``'s weights, with the default options the
    docstring names (checked against the equations' shapes)."""
    return pem_reference(pem.state_dict(), x, T, reduction=4)


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(memory_init='zeros'),
    dict(memory_init='first_diff', last_diff='zeros'),
    dict(gate='scalar'),
    dict(gate='scalar', memory_init='zeros', reduction=8),
    dict(gate='channel', reduction=2),
    dict(last_diff='zeros'),
])
def test_pem_matches_equations(kwargs):
    """The options come from the test, the parameters are drawn to the
    shapes the equations give and loaded strictly into the module: a
    module that builds a layer of another size (e.g. a scalar gate for
    ``gate='channel'``) fails to load them."""
    options = dict(memory_init='last_diff', last_diff='ones',
                   gate='channel', reduction=4)
    options.update(kwargs)
    pem = _pem(**kwargs)
    params = random_pem_params(C, options['reduction'], options['gate'])
    pem.load_state_dict(params, strict=True)
    x = _features()
    expected = pem_reference(params, x, T, options['memory_init'],
                             options['last_diff'], options['gate'],
                             options['reduction'])
    assert torch.allclose(pem(x), expected, atol=1e-12)


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


# The tests below kill mutmut survivors (docs/dev/testing.md names each).
@pytest.mark.parametrize('channels,segments,reduction,gate', [
    (6, 2, 3, 'channel'),  # T = 2, the fewest segments PEM accepts
    (4, 3, 4, 'channel'),  # C / r = 1, the fewest reduced channels
    (4, 2, 4, 'scalar'),
])
def test_pem_smallest_settings_match_equations(channels, segments,
                                               reduction, gate):
    torch.manual_seed(0)
    pem = ProgressiveEnhancementModule(
        channels, segments, reduction=reduction, gate=gate).double()
    params = random_pem_params(channels, reduction, gate)
    pem.load_state_dict(params, strict=True)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2 * segments, channels, 2, 2, generator=gen,
                    dtype=torch.float64)
    expected = pem_reference(params, x, segments, gate=gate,
                             reduction=reduction)
    assert torch.allclose(pem(x), expected, atol=1e-12)


def test_pem_keeps_its_settings():
    pem = ProgressiveEnhancementModule(C, T, reduction=8,
                                       memory_init='zeros',
                                       last_diff='zeros', gate='scalar')
    assert (pem.in_channels, pem.num_segments, pem.reduction) == (C, T, 8)
    assert (pem.memory_init, pem.last_diff, pem.gate) == ('zeros', 'zeros',
                                                          'scalar')
    assert pem.extra_repr() == (
        f"num_segments={T}, memory_init='zeros', last_diff='zeros', "
        "gate='scalar'")


@pytest.mark.parametrize('args,kwargs,message', [
    ((0, T), {}, 'ProgressiveEnhancementModule: `in_channels` must be an '
     'integer >= 1, got 0.'),
    ((C, T), dict(reduction=0), 'ProgressiveEnhancementModule: '
     '`reduction` must be an integer >= 1, got 0.'),
    ((C, 2.5), {}, 'ProgressiveEnhancementModule compares adjacent '
     'segments, so `num_segments` must be an integer >= 2, got 2.5. Set '
     "`model.backbone.num_segments` (and the pipelines' "
     '`SampleFrames(num_clips=...)`) to 2 or more, e.g. 8, or build the '
     'backbone without it (`enhancement_module=None`).'),
    ((C, T), dict(memory_init='last'), 'ProgressiveEnhancementModule: '
     "`memory_init` must be one of ('last_diff', 'first_diff', 'zeros'), "
     "got 'last'."),
    ((C, T), dict(last_diff='one'), 'ProgressiveEnhancementModule: '
     "`last_diff` must be one of ('ones', 'zeros'), got 'one'."),
    ((C, T), dict(gate='vector'), 'ProgressiveEnhancementModule: `gate` '
     "must be one of ('channel', 'scalar'), got 'vector'."),
])
def test_pem_error_messages_verbatim(args, kwargs, message):
    with pytest.raises(ValueError) as info:
        ProgressiveEnhancementModule(*args, **kwargs)
    assert str(info.value) == message
