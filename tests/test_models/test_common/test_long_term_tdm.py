# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The L-TDM against an independent statement of Eqs. (2), (4)-(6).

:func:`tdn_reference.ltdm_reference` is written from the paper and the
release (``ops/base_module.py``, ``mSEModule``) on raw tensors:
``F.conv2d`` with the module's weights, BatchNorm by hand (running
statistics in eval mode, batch statistics in training mode), pooling and
nearest upsampling by index arithmetic. It takes the options explicitly,
never from the module.
"""
import itertools

import pytest
import torch
from mmaction.registry import MODELS
from mmcv.cnn.bricks import Conv2dAdaptivePadding
from tdn_reference import bn_train, ltdm_reference, randomise_bn

import mmaction_tdx  # noqa: F401
from mmaction_tdx.models.common import LongTermTDM

N, T, C, H, W = 2, 4, 32, 7, 7  # odd size: the half scale must round-trip


@pytest.fixture(autouse=True)
def _single_thread():
    """The CI machine is small and shared; one thread avoids contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _features(seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(N * T, C, H, W, generator=gen, dtype=dtype)


def _reverse_segments(x):
    return x.view(-1, T, *x.shape[1:]).flip(1).reshape(x.shape)


def _ltdm(**options):
    torch.manual_seed(1)
    module = LongTermTDM(C, T, reduction=4, **options).double()
    return randomise_bn(module).eval()


VARIANTS = [
    dict(temporal_operator=op, multi_scale=ms, bidirectional=bi, fusion=fu)
    for op, ms, bi, fu in itertools.product(
        LongTermTDM.temporal_operators, (True, False), (True, False),
        LongTermTDM.fusions)
] + [
    dict(upsample_mode='bilinear'),
    dict(backward_full_scale_from_forward=True),
]


@pytest.mark.parametrize('options', VARIANTS, ids=str)
def test_eval_mode_is_the_equations(options):
    module = _ltdm(**options)
    x = _features()
    expected = ltdm_reference(module, x, T, **options)
    with torch.no_grad():
        torch.testing.assert_close(
            module(x), expected, rtol=1e-10, atol=1e-10)
    # The same function with autograd on: no path is chosen by grad mode.
    torch.testing.assert_close(module(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('options', VARIANTS, ids=str)
def test_training_mode_normalises_each_direction_on_its_own(options):
    module = _ltdm(**options).train()
    x = _features()
    torch.testing.assert_close(
        module(x),
        ltdm_reference(module, x, T, norm=bn_train, **options),
        rtol=1e-9,
        atol=1e-9)


def test_running_statistics_follow_the_release_call_order():
    """In training the expand BN sees the forward direction, then the
    backward one: two momentum updates, forward first."""
    module = _ltdm()
    start_mean = module.expand.bn.running_mean.clone()
    start_var = module.expand.bn.running_var.clone()
    x = _features()
    # Pre-BN logits of both directions, by the reference in eval mode with
    # an identity BN after the expand conv.
    seen = []
    module.expand.conv.register_forward_hook(
        lambda mod, args, out: seen.append(out.detach().clone()))
    module.train()(x)
    assert len(seen) == 2
    momentum = module.expand.bn.momentum
    mean, var = start_mean, start_var
    for z in seen:
        n = z.numel() / z.shape[1]
        batch_mean = z.mean((0, 2, 3))
        batch_var = z.var((0, 2, 3), unbiased=False) * n / (n - 1)
        mean = (1 - momentum) * mean + momentum * batch_mean
        var = (1 - momentum) * var + momentum * batch_var
    torch.testing.assert_close(module.expand.bn.running_mean, mean)
    torch.testing.assert_close(module.expand.bn.running_var, var)
    assert int(module.expand.bn.num_batches_tracked) == 2


@pytest.mark.parametrize('options', VARIANTS, ids=str)
def test_switch_to_deploy_is_the_same_function(options):
    module = _ltdm(**options)
    x = _features()
    with torch.no_grad():
        expected = module(x)
        module.switch_to_deploy()
        deployed = module(x)
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for m in module.modules())
    torch.testing.assert_close(deployed, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('options', VARIANTS, ids=str)
def test_gradients_reach_every_parameter(options):
    module = _ltdm(**options).train()
    x = _features().requires_grad_()
    out = module(x)
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, param in module.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize('train', [False, True])
def test_input_and_hooked_tensors_stay_unchanged(train):
    module = _ltdm().train(train)
    captured = []

    def keep(mod, args, out):
        captured.append((out, out.detach().clone()))

    for sub in module.modules():
        sub.register_forward_hook(keep)
    x = _features()
    before = x.clone()
    with torch.no_grad():
        out = module(x)
    out.add_(1.0)  # a consumer writing into the output touches nothing else
    assert torch.equal(x, before)
    assert len(captured) >= 8
    for tensor, copy in captured[:-1]:
        assert torch.equal(tensor, copy)


def test_registered_and_defaults_are_the_release():
    module = MODELS.build(
        dict(type='LongTermTDM', in_channels=64, num_segments=8))
    assert (module.reduction, module.temporal_operator) == (16, 'difference')
    assert module.multi_scale and module.bidirectional
    assert module.fusion == 'attention' and module.upsample_mode == 'nearest'
    assert not module.backward_full_scale_from_forward
    assert module.squeeze.conv.out_channels == 4
    assert module.align.groups == 4 and module.align.bias is None


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


def test_errors():
    # The layout is checked once, at the entry of the backbone holding it.
    backbone = MODELS.build(dict(type='ResNetTDN', depth=18, num_segments=T,
                                 short_term_tdm=None))
    assert isinstance(backbone.layer2[0].ltdm, LongTermTDM)
    with pytest.raises(ValueError, match='num_segments=4'):
        backbone(torch.randn(6, 3, 64, 64))
    with pytest.raises(ValueError, match='fusion'):
        LongTermTDM(C, T, fusion='mul')
    with pytest.raises(ValueError, match='temporal_operator'):
        LongTermTDM(C, T, temporal_operator='sum')
    with pytest.raises(ValueError, match='upsample_mode'):
        LongTermTDM(C, T, upsample_mode='bicubic')
    with pytest.raises(ValueError, match='reduction'):
        LongTermTDM(8, T, reduction=16)
    with pytest.raises(ValueError, match='multi_scale=True'):
        LongTermTDM(C, T, multi_scale=False,
                    backward_full_scale_from_forward=True)


def test_too_small_feature_maps_name_the_fix():
    module = LongTermTDM(in_channels=32, num_segments=2)
    with pytest.raises(ValueError, match='at least 2x2'):
        module(torch.randn(4, 32, 1, 1))


# The tests below kill mutmut survivors (docs/dev/testing.md names each).
def _expected_state_shapes(channels, reduction, multi_scale=True):
    """The release's layers, from Eqs. (4)-(6): bias-free convs, each but
    the channel-wise alignment followed by a BN."""
    hidden = channels // reduction
    shapes = {'align.weight': (hidden, 1, 3, 3)}
    convs = [('squeeze', channels, hidden, 1), ('expand', hidden, channels, 1)]
    if multi_scale:
        convs += [('full_scale', hidden, hidden, 3),
                  ('half_scale', hidden, hidden, 3)]
    for name, cin, cout, k in convs:
        shapes[f'{name}.conv.weight'] = (cout, cin, k, k)
        for entry in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{name}.bn.{entry}'] = (cout, )
        shapes[f'{name}.bn.num_batches_tracked'] = ()
    return shapes


@pytest.mark.parametrize('channels,reduction,multi_scale', [
    (C, 4, True),
    (C, 4, False),
    (6, 3, True),
])
def test_state_dict_is_the_release_layout(channels, reduction, multi_scale):
    module = LongTermTDM(channels, T, reduction=reduction,
                         multi_scale=multi_scale)
    got = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert got == _expected_state_shapes(channels, reduction, multi_scale)


@pytest.mark.parametrize('channels,reduction,segments,size', [
    (4, 4, T, 2),  # C / r = 1 and 2x2 maps: the smallest accepted
    (1, 1, 1, 2),  # one channel, one segment: no neighbour at all
    (3, 2, 2, 3),  # C / r rounds down to 1; odd size
])
def test_smallest_settings_match_the_equations(channels, reduction,
                                               segments, size):
    torch.manual_seed(1)
    module = randomise_bn(
        LongTermTDM(channels, segments, reduction=reduction).double()).eval()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2 * segments, channels, size, size, generator=gen,
                    dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(
            module(x), ltdm_reference(module, x, segments), rtol=1e-10,
            atol=1e-10)


@pytest.mark.parametrize('fusion', LongTermTDM.fusions)
def test_single_scale_accepts_one_pixel_maps(fusion):
    """Only the half-resolution branch needs 2x2 maps."""
    options = dict(multi_scale=False, fusion=fusion)
    module = _ltdm(**options)
    x = _features()[:, :, :1, :1].contiguous()
    with torch.no_grad():
        torch.testing.assert_close(
            module(x), ltdm_reference(module, x, T, **options), rtol=1e-10,
            atol=1e-10)


def test_keeps_its_settings():
    init_cfg = dict(type='Constant', val=0.5, layer='Conv2d')
    module = LongTermTDM(C, 2, reduction=8, temporal_operator='average',
                         multi_scale=True, bidirectional=True,
                         fusion='channel_attention', upsample_mode='bilinear',
                         backward_full_scale_from_forward=True,
                         init_cfg=init_cfg)
    assert (module.in_channels, module.num_segments, module.reduction) == (
        C, 2, 8)
    assert (module.temporal_operator, module.fusion,
            module.upsample_mode) == ('average', 'channel_attention',
                                      'bilinear')
    assert module.multi_scale is True and module.bidirectional is True
    assert module.backward_full_scale_from_forward is True
    assert module.init_cfg == init_cfg
    assert module.extra_repr() == (
        f"in_channels={C}, num_segments=2, reduction=8, "
        "temporal_operator='average', multi_scale=True, bidirectional=True, "
        "fusion='channel_attention', upsample_mode='bilinear'")
    module = LongTermTDM(C, T, multi_scale=False, bidirectional=False)
    assert module.multi_scale is False and module.bidirectional is False
    assert module.backward_full_scale_from_forward is False


def test_layer_configs_reach_every_built_conv():
    module = LongTermTDM(C, T, reduction=4,
                         conv_cfg=dict(type='Conv2dAdaptivePadding'),
                         norm_cfg=dict(type='BN2d', momentum=0.25))
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5
    assert all(type(m) is Conv2dAdaptivePadding for m in convs)
    bns = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 4 and all(m.momentum == 0.25 for m in bns)


def test_convs_have_no_bias_even_without_a_norm():
    """``bias=False`` is explicit (the release's layers), not ConvModule's
    ``'auto'`` (a bias when no norm follows)."""
    module = LongTermTDM(C, T, reduction=4, norm_cfg=None)
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(m.bias is None for m in convs)
    assert sorted(module.state_dict()) == [
        'align.weight', 'expand.conv.weight', 'full_scale.conv.weight',
        'half_scale.conv.weight', 'squeeze.conv.weight'
    ]


QUIRK_MESSAGE = (
    'LongTermTDM: backward_full_scale_from_forward=True reproduces a quirk '
    'of the multi-scale, bidirectional release module; it needs '
    'multi_scale=True and bidirectional=True.')


@pytest.mark.parametrize('args,kwargs,message', [
    ((0, T), {}, 'LongTermTDM: `in_channels` must be an integer >= 1, got '
     '0.'),
    ((32.0, T), {}, 'LongTermTDM: `in_channels` must be an integer >= 1, '
     'got 32.0.'),
    ((C, 0), {}, 'LongTermTDM: `num_segments` must be an integer >= 1, got '
     '0.'),
    ((C, True), {}, 'LongTermTDM: `num_segments` must be an integer >= 1, '
     'got True.'),
    ((C, T), dict(reduction=0), 'LongTermTDM: `reduction` must be an '
     'integer >= 1, got 0.'),
    ((C, T), dict(reduction=None), 'LongTermTDM: `reduction` must be an '
     'integer >= 1, got None.'),
    ((8, T), dict(reduction=9), 'LongTermTDM: reduction=9 leaves no '
     'channels of in_channels=8. Use reduction <= 8.'),
    ((C, T), dict(temporal_operator='sum'), 'LongTermTDM: '
     "`temporal_operator` must be one of ('difference', 'average'), got "
     "'sum'."),
    ((C, T), dict(fusion='mul'), "LongTermTDM: `fusion` must be one of "
     "('attention', 'channel_attention', 'add'), got 'mul'."),
    ((C, T), dict(upsample_mode='bicubic'), 'LongTermTDM: `upsample_mode` '
     "must be one of ('nearest', 'bilinear'), got 'bicubic'."),
    ((C, T), dict(backward_full_scale_from_forward=True, multi_scale=False),
     QUIRK_MESSAGE),
    ((C, T), dict(backward_full_scale_from_forward=True,
                  bidirectional=False), QUIRK_MESSAGE),
])
def test_error_messages_name_the_fix(args, kwargs, message):
    with pytest.raises(ValueError) as info:
        LongTermTDM(*args, **kwargs)
    assert str(info.value) == message


def test_too_small_maps_message_verbatim():
    module = LongTermTDM(C, 2, reduction=4)
    with pytest.raises(ValueError) as info:
        module(torch.randn(4, C, 1, 5))
    assert str(info.value) == (
        'LongTermTDM: its half-resolution branch (2x2 average pooling) needs '
        'feature maps of at least 2x2, got (1, 5). The input resolution is '
        'too small for this stage: use larger frames (e.g. >= 48 px for a '
        'ResNet) or build the L-TDM with multi_scale=False.')
