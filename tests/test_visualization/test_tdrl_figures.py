# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TDRL Figs. 3 and 4: the maps, and the tools that draw them for a real
video."""
import os.path as osp

import pytest
import torch
from mmaction.registry import MODELS
from vis_helpers import MODELS as MODEL_CONFIGS
from vis_helpers import R18, R18_OPTIONS, assert_nontrivial_png, run_tool

from mmaction_tdx.apis import init_video_recognizer
from mmaction_tdx.visualization import (
    pem_channel_maps,
    tm_feature_maps,
    tm_features,
)

T = 3


def _block_and_input(**backbone):
    torch.manual_seed(0)
    net = MODELS.build(
        dict(type='ResNetTDRL', depth=18, num_segments=T, **backbone)).eval()
    block = net.layer1[0]
    x = torch.randn(T, 64, 8, 8)
    return block, x


def test_pem_maps_average_the_most_and_least_enhanced_channels():
    block, x = _block_and_input()
    maps = pem_channel_maps(block, x, k=4)
    attention = block.enhancement.attention(x)[0].detach()
    assert maps['attention'].shape == (T, 64)
    assert torch.allclose(torch.from_numpy(maps['attention']), attention)
    for t in range(T):
        order = attention[t].argsort(descending=True)
        assert set(maps['enhanced_channels'][t]) == set(order[:4].tolist())
        assert set(maps['suppressed_channels'][t]) == set(
            order[-4:].tolist())
    # the enhanced map is the (jointly scaled) mean of those channels
    top = torch.stack([x[t, maps['enhanced_channels'][t]].mean(0)
                       for t in range(T)])
    expected = (top - top.min()) / (top.max() - top.min())
    assert torch.allclose(torch.from_numpy(maps['enhanced']), expected,
                          atol=1e-6)
    assert maps['before_rgb'].shape == (T, 8, 8, 3)
    assert maps['suppressed'].min() == 0 and maps['suppressed'].max() == 1


def test_pem_maps_need_a_pem():
    block, x = _block_and_input(enhancement_module=None)
    with pytest.raises(ValueError, match='no `enhancement`'):
        pem_channel_maps(block, x)
    block, x = _block_and_input(
        enhancement_module=dict(type='MotionEnhancementModule'))
    with pytest.raises(TypeError, match='ProgressiveEnhancementModule'):
        pem_channel_maps(block, x)


@pytest.mark.parametrize('position', ['before_tm', 'after_tm'])
def test_tm_features_are_the_tm_input_and_output(position):
    block, x = _block_and_input(enhancement_position=position)
    before, after = tm_features(block, x)
    with torch.no_grad():
        expected_before = block.enhancement(x) if position == 'before_tm' \
            else x
        assert torch.allclose(before, expected_before)
        assert torch.allclose(after, block.temporal(before))
        # and the block really computes its convolutions on these
        out, td = block.temporal_path(x)
        assert torch.allclose(td, after, atol=1e-5)
    maps = tm_feature_maps(block, x, channel_ratio=0.5)
    assert maps['before_tm'].shape == maps['after_tm'].shape == (T, 8, 8)


def test_vis_pem_channels_writes_fig3(shared_dir, tmp_path, capsys):
    video = osp.join(shared_dir, 'data', 'videos',
                     'kinetics_arm_wrestling.mp4')
    out = tmp_path / 'fig3.png'
    assert run_tool('tools/visualizations/vis_pem_channels.py',
                    osp.join(MODEL_CONFIGS, 'tdrl_r50.py'), 'none', video,
                    '--out', out, '--cfg-options', *R18) == 0
    assert 'PEM of backbone.layer1.0' in capsys.readouterr().out
    assert_nontrivial_png(out)


def test_vis_td_features_writes_fig4(shared_dir, tmp_path, capsys):
    """Two checkpoints (here: two random inits of the same model)."""
    video = osp.join(shared_dir, 'data', 'videos', 'test.mp4')
    config = osp.join(MODEL_CONFIGS, 'tdrl_r50.py')
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = init_video_recognizer(config, None, 'cpu', R18_OPTIONS)
        paths.append(tmp_path / f'model{seed}.pth')
        torch.save({'state_dict': model.state_dict()}, paths[-1])
    out = tmp_path / 'fig4.png'
    assert run_tool('tools/visualizations/vis_td_features.py', video,
                    '--without', config, paths[0], '--with', config,
                    paths[1], '--out', out, '--cfg-options', *R18) == 0
    assert 'w/ TD (before, after TM)' in capsys.readouterr().out
    assert_nontrivial_png(out, min_size=(400, 300))


def test_vis_pem_channels_explains_a_wrong_block(shared_dir, tmp_path,
                                                 capsys):
    video = osp.join(shared_dir, 'data', 'videos', 'test.avi')
    assert run_tool('tools/visualizations/vis_pem_channels.py',
                    osp.join(MODEL_CONFIGS, 'tdrl_r50.py'), 'none', video,
                    '--out', tmp_path / 'x.png', '--block',
                    'backbone.layer9', '--cfg-options', *R18) == 1
    assert "no submodule 'layer9'" in capsys.readouterr().err
    assert not (tmp_path / 'x.png').exists()
