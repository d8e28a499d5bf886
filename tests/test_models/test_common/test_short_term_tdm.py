# Copyright (c) mmaction_tdx contributors. All rights reserved.
import pytest
import torch
from mmaction.registry import MODELS

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


def _frames(seed=0):
    torch.manual_seed(seed)
    return torch.randn(NT, L, 3, S, S)


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
        torch.testing.assert_close(motion[:, 3 * i:3 * i + 3],
                                   frames[:, i + 1] - frames[:, i])


def test_static_video_gives_zero_motion_input():
    module = ShortTermTDM(8, depth=18)
    static = _frames()[:, :1].expand(NT, L, 3, S, S)
    assert module.motion_input(static).abs().max() == 0


def test_frames_mode_stacks_all_frames():
    module = ShortTermTDM(8, depth=18, input_mode='frames')
    frames = _frames()
    assert module.stem.conv.in_channels == 15
    torch.testing.assert_close(
        module.motion_input(frames), frames.flatten(1, 2))


@pytest.mark.parametrize('stages', [1, 2, 3])
def test_forward_shapes(stages):
    module = ShortTermTDM(8, depth=18, num_fused_stages=stages)
    motions = module(_frames())
    expected = [(NT, 64, S // 8, S // 8), (NT, 64, S // 8, S // 8),
                (NT, 128, S // 16, S // 16)][:stages]
    assert [tuple(m.shape) for m in motions] == expected


def test_bottleneck_branch_shapes():
    module = ShortTermTDM(8, depth=50)
    motions = module(_frames())
    assert [tuple(m.shape) for m in motions] == [(NT, 64, 4, 4),
                                                 (NT, 256, 4, 4)]


@pytest.mark.parametrize('fusion', ShortTermTDM.fusions)
def test_fusions(fusion):
    module = ShortTermTDM(8, depth=18, fusion=fusion)
    rgb = torch.randn(NT, 64, 8, 8, requires_grad=True)
    motion = torch.randn(NT, 64, 4, 4, requires_grad=True)
    out = module.fuse(rgb, motion)
    up = motion.repeat_interleave(2, -1).repeat_interleave(2, -2)
    channel = torch.sigmoid(motion.mean((2, 3), keepdim=True))
    expected = dict(
        weighted_add=0.5 * rgb + 0.5 * up,
        add=rgb + up,
        mul=rgb * torch.sigmoid(up),
        mul_add=rgb + rgb * torch.sigmoid(up),
        channel_mul=rgb * channel,
        channel_mul_add=rgb + rgb * channel)[fusion]
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert rgb.grad.abs().sum() > 0 and motion.grad.abs().sum() > 0


def test_gradients_reach_every_parameter():
    module = ShortTermTDM(8, depth=18, num_fused_stages=3).train()
    motions = module(_frames())
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
    with pytest.raises(ValueError, match=r'\(N\*T, 5, C, H, W\)'):
        module(torch.randn(NT, 3, 3, S, S))
    with pytest.raises(ValueError, match='cannot fuse'):
        module.fuse(torch.randn(NT, 64, 8, 8), torch.randn(NT, 32, 4, 4))
