# Copyright (c) mmaction_tdx contributors. All rights reserved.
import numpy as np
import pytest
import torch
import torch.nn as nn

from mmaction_tdx.visualization import (
    channel_groups_rgb,
    get_module,
    save_image_grid,
    scale_to_unit,
    segment_frames,
)


def _model():
    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.layer4 = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(),
                                          nn.Identity())
    return model


def test_get_module_dots_slashes_negative_indices():
    model = _model()
    last = model.backbone.layer4[2]
    assert get_module(model, 'backbone.layer4.-1') is last
    assert get_module(model, 'backbone/layer4/2') is last
    assert get_module(model, 'backbone.layer4.1') is model.backbone.layer4[1]
    with pytest.raises(KeyError, match='has 3 entries'):
        get_module(model, 'backbone.layer4.3')
    with pytest.raises(KeyError, match="no submodule 'layer5'"):
        get_module(model, 'backbone.layer5')


def test_segment_frames_picks_the_centre_of_each_segment():
    # 2 segments of 5 frames; frame i is filled with the value i.
    frames = torch.arange(10).view(10, 1, 1, 1).expand(10, 3, 2, 2)
    centres = segment_frames(frames, 2)
    assert centres.shape == (2, 2, 2, 3) and centres.dtype == np.uint8
    assert centres[:, 0, 0, 0].tolist() == [2, 7]
    assert segment_frames(frames, 10)[:, 0, 0, 0].tolist() == list(range(10))
    with pytest.raises(ValueError):
        segment_frames(frames, 3)


def test_scaling_and_channel_groups():
    maps = torch.tensor([[1., 3.], [5., 9.]])
    assert scale_to_unit(maps).tolist() == [[0, 0.25], [0.5, 1]]
    assert not scale_to_unit(torch.ones(3)).any()
    # channels 0-1 -> red, 2-3 -> green, 4-5 -> blue
    features = torch.zeros(2, 6, 1, 1)
    features[1, :2] = 1  # frame 1 is red
    features[0, 4:] = 1  # frame 0 is blue
    rgb = channel_groups_rgb(features)
    assert rgb.shape == (2, 1, 1, 3)
    assert rgb[1, 0, 0].tolist() == [1, 0, 0]
    assert rgb[0, 0, 0].tolist() == [0, 0, 1]


def test_grid_refuses_nothing(tmp_path):
    with pytest.raises(ValueError, match='Nothing to draw'):
        save_image_grid([('row', [])], str(tmp_path / 'x.png'))
