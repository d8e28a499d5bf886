# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Shape-only FLOPs counting equals MMEngine's full trace."""
import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO_ROOT, load_tool
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmaction_tdx  # noqa: F401  (registers our modules)

# A developer tool (tools/analysis/flops.py), not library code.
_flops = load_tool('tools/analysis/flops.py')
RecognizerFlops = _flops.RecognizerFlops
head_flops = _flops.head_flops
shape_only_layers = _flops.shape_only_layers

TDN_SSV1 = ('configs/tdn/'
            'tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py')


def build(config, depth=None, **backbone):
    cfg = Config.fromfile(f'{REPO_ROOT}/{config}')
    init_default_scope('mmaction')
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.pretrained = None
    model_cfg.backbone.update(backbone)
    head = model_cfg.cls_head
    if 'num_segments' in backbone and 'segments_per_view' in head:
        # The release's per-view consensus head counts views of T segments.
        head.segments_per_view = backbone['num_segments']
    if depth is not None:
        model_cfg.backbone.depth = depth
        model_cfg.cls_head.in_channels = 512
    return MODELS.build(model_cfg)


def assert_same_counts(model, frames, resolution):
    shape_only = RecognizerFlops(model, frames, resolution)
    full = RecognizerFlops(model, frames, resolution, shape_only=False)
    assert shape_only.total == full.total > 0
    assert shape_only.by_operator == full.by_operator
    assert shape_only.head == full.head > 0
    assert shape_only.feature_shape == full.feature_shape
    return full


SMALL_MODELS = {
    # TDN: S-TDM, L-TDM (with the eval-time conv/BN folding) and the
    # temporal conv; a 2-stage S-TDM and 1x1 convs after pooling.
    'tdn': (TDN_SSV1, dict(num_segments=4), 20),
    'tdn-stdm-1-3': (TDN_SSV1,
                     dict(num_segments=4, short_term_stages=(1, 2, 3),
                          long_term_stages=(4, 5)), 20),
    # TDRL: PEM (linear layers) before the temporal conv.
    'tdrl': ('configs/tdrl/tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_'
             'sthv1-rgb.py', dict(num_segments=4), 4),
    # MMAction2's TSM.
    'tsm': ('configs/tdn/ablations/tsm_imagenet-pretrained-r50_8xb8-1x1x8-'
            '60e_sthv1-rgb.py', dict(num_segments=4), 4),
}


@pytest.mark.parametrize('name', sorted(SMALL_MODELS))
def test_shape_only_counts_equal_full_trace(name):
    config, backbone, frames = SMALL_MODELS[name]
    model = build(config, depth=18, **backbone)
    if name == 'tsm':
        model.cls_head.num_segments = 4
    assert_same_counts(model, frames, resolution=96)


def test_head_is_counted_separately():
    model = build(TDN_SSV1, depth=18, num_segments=4)
    counted = RecognizerFlops(model, 20, 64)
    assert counted.backbone + counted.head == counted.total
    assert counted.num_segs == 4
    assert counted.feature_shape == (4, 512, 2, 2)
    assert head_flops(model.cls_head, counted.feature_shape,
                      counted.num_segs) == counted.head
    # fc: 512 x 174 multiply-adds after the consensus, plus the pooling.
    assert counted.head == 512 * 174 + 4 * 512 * 2 * 2


def test_stand_ins_keep_shapes_and_are_restored():
    conv2d, batch_norm, relu = F.conv2d, F.batch_norm, F.relu
    x, w = torch.randn(1, 2, 9, 7), torch.randn(3, 2, 3, 3)
    bn = torch.nn.BatchNorm2d(3).eval()
    expected = bn(F.conv2d(x, w, stride=2, padding=1, dilation=2))
    with pytest.raises(RuntimeError):
        with shape_only_layers():
            out = F.relu(bn(F.conv2d(x, w, stride=2, padding=1, dilation=2)),
                         inplace=True)
            assert out.shape == expected.shape
            raise RuntimeError
    assert (F.conv2d, F.batch_norm, F.relu) == (conv2d, batch_norm, relu)


@pytest.mark.slow
def test_shape_only_counts_equal_full_trace_at_paper_size():
    """The TDN-R50 of Table 2 at 224x224, 8 x 5 frames: the only full trace
    of a paper-size model in the suite."""
    counted = assert_same_counts(build(TDN_SSV1), 40, 224)
    assert counted.feature_shape == (8, 2048, 7, 7)
