# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The S-TDM against an independent statement of Eqs. (1) and (3)
(:mod:`tdn_reference`: raw tensors, the module's weights, BN by hand)."""
import pytest
import torch
from mmaction.registry import MODELS
from mmcv.cnn.bricks import Conv2dAdaptivePadding
from tdn_reference import fuse_reference, randomise_bn, stdm_reference

import mmaction_tdx  # noqa: F401
from mmaction_tdx.models.common import ShortTermTDM


@pytest.fixture(autouse=True)
def _single_thread():
    """The CI machine is small and shared; one thread avoids contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


NT, L, S = 4, 5, 32


def _frames(seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(NT, 3 * L, S, S, generator=gen, dtype=dtype)


def _stdm(**options):
    torch.manual_seed(0)
    options.setdefault('depth', 18)
    module = ShortTermTDM(8, **options).double()
    return randomise_bn(module).eval()


def test_registered_release_defaults():
    module = MODELS.build(dict(type='ShortTermTDM', num_segments=8))
    assert module.in_channels == 12 and module.frames_per_segment == 5
    assert module.fusion == 'weighted_add'
    assert module.fusion_weights == (0.5, 0.5)
    assert module.res_layers == ['layer1']
    stem = module.stem
    assert (stem.conv.in_channels, stem.conv.out_channels) == (12, 64)
    assert stem.conv.kernel_size == (7, 7) and stem.conv.stride == (2, 2)
    assert stem.conv.bias is None and stem.with_norm and stem.with_activation


@pytest.mark.parametrize('num_segments,weights', [(8, (0.5, 0.5)),
                                                  (16, (0.75, 0.25)),
                                                  (4, (0.75, 0.25))])
def test_release_fusion_weights_follow_num_segments(num_segments, weights):
    module = ShortTermTDM(num_segments, depth=18)
    assert module.fusion_weights == weights


def test_motion_input_is_the_stacked_differences():
    module = ShortTermTDM(8, depth=18)
    frames = _frames()
    motion = module.motion_input(frames)
    assert motion.shape == (NT, 12, S, S)
    for i in range(4):
        torch.testing.assert_close(
            motion[:, 3 * i:3 * i + 3],
            frames[:, 3 * (i + 1):3 * (i + 2)] - frames[:, 3 * i:3 * i + 3])


def test_static_video_gives_zero_motion_input():
    module = ShortTermTDM(8, depth=18)
    static = _frames()[:, :3].repeat(1, L, 1, 1)
    assert module.motion_input(static).abs().max() == 0


@pytest.mark.parametrize('input_mode', ShortTermTDM.input_modes)
@pytest.mark.parametrize('stages', [1, 2, 3])
def test_forward_is_eq3(input_mode, stages):
    module = _stdm(input_mode=input_mode, num_fused_stages=stages)
    frames = _frames()
    with torch.no_grad():
        motions = module(frames)
    expected = stdm_reference(frames, module.state_dict(), L, input_mode,
                              stages, prefix='')
    assert len(motions) == stages
    for got, want in zip(motions, expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    assert motions[0].shape == (NT, 64, S // 8, S // 8)


def test_bottleneck_branch_shapes():
    module = ShortTermTDM(8, depth=50)
    motions = module(_frames(dtype=torch.float32))
    assert [tuple(m.shape) for m in motions] == [(NT, 64, 4, 4),
                                                 (NT, 256, 4, 4)]


@pytest.mark.parametrize('fusion,num_segments,weights', [
    *[(f, 8, None) for f in ShortTermTDM.fusions],
    ('weighted_add', 4, None),
    ('weighted_add', 8, (0.9, 0.3)),
])
def test_fusions(fusion, num_segments, weights):
    module = ShortTermTDM(
        num_segments, depth=18, fusion=fusion, fusion_weights=weights)
    expected_weights = weights or ((0.5, 0.5) if num_segments == 8 else
                                   (0.75, 0.25))
    gen = torch.Generator().manual_seed(3)
    rgb = torch.randn(NT, 64, 8, 8, generator=gen, dtype=torch.float64)
    motion = torch.randn(NT, 64, 4, 4, generator=gen, dtype=torch.float64)
    rgb.requires_grad_(), motion.requires_grad_()
    kept = rgb.detach().clone(), motion.detach().clone()
    out = module.fuse(rgb, motion)
    torch.testing.assert_close(
        out, fuse_reference(rgb, motion, fusion, expected_weights))
    out.sum().backward()
    assert rgb.grad.abs().sum() > 0 and motion.grad.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(
            module.fuse(rgb, motion),
            fuse_reference(rgb, motion, fusion, expected_weights))
    # The inputs are never written to, with or without autograd.
    assert torch.equal(rgb.detach(), kept[0])
    assert torch.equal(motion.detach(), kept[1])


def test_odd_sizes_upsample_nearest():
    module = ShortTermTDM(8, depth=18, fusion='add')
    gen = torch.Generator().manual_seed(4)
    rgb = torch.randn(NT, 64, 7, 7, generator=gen)
    motion = torch.randn(NT, 64, 3, 3, generator=gen)
    torch.testing.assert_close(
        module.fuse(rgb, motion), fuse_reference(rgb, motion, 'add'))


def test_switch_to_deploy_is_the_same_function():
    module = _stdm(num_fused_stages=3)
    frames = _frames()
    with torch.no_grad():
        expected = module(frames)
        module.switch_to_deploy()
        deployed = module(frames)
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for m in module.modules())
    for got, want in zip(deployed, expected):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_gradients_reach_every_parameter():
    module = ShortTermTDM(8, depth=18, num_fused_stages=3).train()
    motions = module(_frames(dtype=torch.float32))
    sum(m.square().mean() for m in motions).backward()
    for name, param in module.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_errors():
    with pytest.raises(ValueError, match='odd'):
        ShortTermTDM(8, frames_per_segment=4)
    with pytest.raises(ValueError, match='fusion'):
        ShortTermTDM(8, fusion='concat')
    with pytest.raises(ValueError, match='fusion_weights'):
        ShortTermTDM(8, fusion='add', fusion_weights=(1, 1))
    with pytest.raises(ValueError, match='input_mode'):
        ShortTermTDM(8, input_mode='flow')
    with pytest.raises(ValueError, match='depth'):
        ShortTermTDM(8, depth=42)
    module = ShortTermTDM(8, depth=18)
    # The layout is checked once, at the entry of the backbone holding it.
    backbone = MODELS.build(dict(type='ResNetTDN', depth=18, num_segments=NT))
    with pytest.raises(ValueError, match=r'\(N\*T, 15, H, W\).*x\.view'):
        backbone(torch.randn(NT * L, 3, S, S))
    with pytest.raises(ValueError, match='cannot fuse'):
        module.fuse(torch.randn(NT, 64, 8, 8), torch.randn(NT, 32, 4, 4))


# The tests below kill mutmut survivors (docs/dev/testing.md names each).
# Block expansion of the ResNet stages (BasicBlock 1, Bottleneck 4).
EXPANSION = {18: 1, 50: 4}


def _out_size(size, stride):
    """Spatial size after a 3x3 (or 7x7) conv/pool with ``padding=k//2``."""
    return (size - 1) // stride + 1


@pytest.mark.parametrize('depth,stages', [(18, 5), (50, 3)])
def test_stage_shapes_follow_the_resnet_stages(depth, stages):
    """Stem: 64 channels at 1/8 (2x2 average pool, 7x7/2 conv, 3x3/2 max
    pool); stage ``i`` of the motion path: ``64 * 2**(i - 1)`` planes times
    the block expansion, stride 1 for ``layer1`` and 2 after. ``stages=5``
    is the largest accepted setting."""
    module = ShortTermTDM(8, depth=depth, num_fused_stages=stages).eval()
    size = 32
    with torch.no_grad():
        motions = module(torch.randn(1, 3 * L, size, size))
    h = _out_size(_out_size(size // 2, 2), 2)
    expected = [(1, 64, h, h)]
    for i in range(1, stages):
        h = _out_size(h, 1 if i == 1 else 2)
        expected.append((1, 64 * 2**(i - 1) * EXPANSION[depth], h, h))
    assert [tuple(m.shape) for m in motions] == expected
    assert module.res_layers == [f'layer{i}' for i in range(1, stages)]


@pytest.mark.parametrize('input_mode,stacked', [('difference', 2),
                                                ('frames', 3)])
def test_three_frames_per_segment_is_the_smallest(input_mode, stacked):
    """``L = 3``, the smallest odd ``L`` with a centre frame, stacks
    ``3 (L - 1)`` differences (or ``3 L`` frames) on channels."""
    module = _stdm(frames_per_segment=3, input_mode=input_mode,
                   num_fused_stages=1)
    assert module.in_channels == module.stem.conv.in_channels == 3 * stacked
    frames = torch.randn(2, 9, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        (motion, ) = module(frames)
    expected = stdm_reference(frames, module.state_dict(), 3, input_mode,
                              1, prefix='')
    torch.testing.assert_close(motion, expected[0], rtol=1e-10, atol=1e-10)
    assert motion.shape == (2, 64, 2, 2)


def test_keeps_its_settings():
    module = ShortTermTDM(4, depth=34, frames_per_segment=7,
                          input_mode='frames', num_fused_stages=1,
                          fusion='weighted_add', fusion_weights=(2, 1))
    assert (module.num_segments, module.depth, module.frames_per_segment,
            module.num_fused_stages) == (4, 34, 7, 1)
    assert (module.input_mode, module.fusion) == ('frames', 'weighted_add')
    assert module.fusion_weights == (2.0, 1.0)
    assert all(isinstance(w, float) for w in module.fusion_weights)
    assert module.extra_repr() == (
        "num_segments=4, frames_per_segment=7, input_mode='frames', "
        "num_fused_stages=1, fusion='weighted_add', fusion_weights=(2.0, "
        '1.0)')


def test_layer_configs_reach_every_built_module():
    """``conv_cfg``, ``norm_cfg``, ``act_cfg``, ``with_cp`` and ``init_cfg``
    are passed on to the stem and to every residual block."""
    init_cfg = dict(type='Constant', val=0.5, layer='Conv2d')
    module = ShortTermTDM(
        8,
        depth=50,
        conv_cfg=dict(type='Conv2dAdaptivePadding'),
        norm_cfg=dict(type='BN2d', momentum=0.25),
        act_cfg=dict(type='LeakyReLU', negative_slope=0.125),
        with_cp=True,
        init_cfg=init_cfg)
    assert module.init_cfg == init_cfg
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    # stem + layer1: 3 bottlenecks of 3 convs and one downsample conv
    assert len(convs) == 1 + 3 * 3 + 1
    assert all(type(m) is Conv2dAdaptivePadding for m in convs)
    bns = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == len(convs) and all(m.momentum == 0.25 for m in bns)
    assert isinstance(module.stem.activate, torch.nn.LeakyReLU)
    assert module.stem.activate.negative_slope == 0.125
    blocks = list(module.layer1)
    assert len(blocks) == 3 and all(b.with_cp for b in blocks)
    for block in blocks:
        assert isinstance(block.conv1.activate, torch.nn.LeakyReLU)
        assert isinstance(block.conv2.activate, torch.nn.LeakyReLU)


def test_stem_has_no_bias_even_without_a_norm():
    """The release's stem conv is ``bias=False``, whatever follows it."""
    module = ShortTermTDM(8, depth=18, num_fused_stages=1, norm_cfg=None)
    assert not module.stem.with_norm and module.stem.conv.bias is None
    assert sorted(module.state_dict()) == ['stem.conv.weight']


@pytest.mark.parametrize('args,kwargs,message', [
    ((0, ), {}, 'ShortTermTDM: `num_segments` must be an integer >= 1, '
     'got 0.'),
    ((None, ), {}, 'ShortTermTDM: `num_segments` must be an integer >= 1, '
     'got None.'),
    ((8, ), dict(frames_per_segment=1), 'ShortTermTDM: `frames_per_segment` '
     'must be an integer >= 3, got 1.'),
    ((8, ), dict(frames_per_segment=5.0), 'ShortTermTDM: '
     '`frames_per_segment` must be an integer >= 3, got 5.0.'),
    ((8, ), dict(frames_per_segment=True), 'ShortTermTDM: '
     '`frames_per_segment` must be an integer >= 3, got True.'),
    ((8, ), dict(frames_per_segment=4), 'ShortTermTDM: `frames_per_segment` '
     'must be odd so that a centre frame exists, got 4. The release uses '
     '5.'),
    ((8, ), dict(depth=42), 'ShortTermTDM: unsupported ResNet depth 42; use '
     'one of [18, 34, 50, 101, 152].'),
    ((8, ), dict(num_fused_stages=0), 'ShortTermTDM: `num_fused_stages` '
     'must be an integer >= 1, got 0.'),
    ((8, ), dict(num_fused_stages=2.0), 'ShortTermTDM: `num_fused_stages` '
     'must be an integer >= 1, got 2.0.'),
    ((8, ), dict(num_fused_stages=6), 'ShortTermTDM: a ResNet has 5 stages '
     '(stem and layer1-4), so num_fused_stages must be <= 5, got 6.'),
    ((8, ), dict(input_mode='flow'), "ShortTermTDM: `input_mode` must be "
     "one of ('difference', 'frames'), got 'flow'."),
    ((8, ), dict(fusion='concat'), "ShortTermTDM: `fusion` must be one of "
     "('weighted_add', 'add', 'mul', 'mul_add', 'channel_mul', "
     "'channel_mul_add'), got 'concat'."),
    ((8, ), dict(fusion='add', fusion_weights=(1, 1)), 'ShortTermTDM: '
     '`fusion_weights` only applies to fusion="weighted_add", got '
     "fusion='add'."),
    ((8, ), dict(fusion_weights=(1, 2, 3)), 'ShortTermTDM: `fusion_weights` '
     'must be (alpha, beta), got (1, 2, 3).'),
])
def test_error_messages_name_the_fix(args, kwargs, message):
    with pytest.raises(ValueError) as info:
        ShortTermTDM(*args, **kwargs)
    assert str(info.value) == message


def test_fuse_error_message_names_both_shapes():
    module = ShortTermTDM(8, depth=18, num_fused_stages=1)
    with pytest.raises(ValueError) as info:
        module.fuse(torch.randn(NT, 64, 8, 8), torch.randn(NT, 32, 4, 4))
    assert str(info.value) == (
        'ShortTermTDM: cannot fuse motion features of shape (4, 32, 4, 4) '
        'into RGB features of shape (4, 64, 8, 8); batch and channels must '
        'match.')
