# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The S-TDM against an independent statement of Eqs. (1) and (3)
(:mod:`tdn_reference`: raw tensors, the module's weights, BN by hand)."""
import pytest
import torch
from mmaction.registry import MODELS
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
