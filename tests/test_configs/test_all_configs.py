# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Every shipped config runs (issue 21, "every shipped config, in every
tool").

For each config in ``configs/`` (the ``_base_`` partials excepted): its
pipelines obey the sampling contract (train: one view; val/test: whole
views scored per view), and its model, built at reduced size (ResNet-18,
no pretrained weights, frames of ``SIZE`` px), runs ``test_step`` on
random uint8 frames of the shape its OWN test pipeline yields
(``sampling_contract.input_shape``), giving ``(1, num_classes)`` scores
that sum to 1 for ``average_clips='prob'``.

Cost: models that differ only in the number of classes share one build
(the classifier is rebuilt per config); a test pipeline of many views
runs its first ``MAX_VIEWS`` views (every view is an independent block of
``T*L`` frames, so more views add time, not coverage; the full view count
is checked through the contract).
"""
import copy
import glob
import json
import os.path as osp

import pytest
import torch
import torch.nn as nn
from conftest import REPO_ROOT
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmaction_tdx.datasets import sampling_contract as contract

CONFIGS = sorted(
    osp.relpath(path, REPO_ROOT)
    for path in glob.glob(f'{REPO_ROOT}/configs/**/*.py', recursive=True)
    if '_base_' not in osp.relpath(path, REPO_ROOT).split(osp.sep))
SIZE = 48  # TDN's L-TDM needs >= 2x2 feature maps in its last stage
MAX_VIEWS = 2
_MODELS = {}


def test_every_config_is_listed():
    families = {osp.dirname(path) for path in CONFIGS}
    assert families == {
        'configs/quickstart', 'configs/tdn', 'configs/tdn/ablations',
        'configs/tdrl', 'configs/tdrl/ablations'
    }
    assert len(CONFIGS) >= 70


def reduced_model_cfg(model_cfg) -> dict:
    """ResNet-18 without pretrained weights; the head's input to match."""
    cfg = copy.deepcopy(model_cfg.to_dict())
    backbone = cfg['backbone']
    backbone['pretrained'] = None
    backbone.pop('init_cfg', None)
    if backbone.get('depth', 18) > 18:
        backbone['depth'] = 18
        cfg['cls_head']['in_channels'] = 512
    return cfg


def build(model_cfg: dict):
    """A shared build per model design; the classifier is the config's."""
    num_classes = model_cfg['cls_head']['num_classes']
    key = json.dumps(
        dict(model_cfg, cls_head=dict(model_cfg['cls_head'],
                                      num_classes=None)),
        sort_keys=True, default=str)
    if key not in _MODELS:
        torch.manual_seed(0)
        model = MODELS.build(model_cfg).eval()
        contract.bind_view_heads(model)
        _MODELS[key] = model
    model = _MODELS[key]
    head = model.cls_head
    if head.num_classes != num_classes:
        head.num_classes = num_classes
        head.fc_cls = nn.Linear(head.in_channels, num_classes)
    return model


def tiny(pipeline):
    """The pipeline with every crop at ``SIZE`` px."""
    steps = copy.deepcopy(list(pipeline))
    for step in steps:
        if step['type'] in ('CenterCrop', 'ThreeCrop', 'TenCrop'):
            step['crop_size'] = SIZE
        elif step['type'] == 'Resize' and step.get('keep_ratio') is False:
            step['scale'] = (SIZE, SIZE)
    return steps


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_and_tests_at_reduced_size(path):
    cfg = Config.fromfile(osp.join(REPO_ROOT, path))
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    assert contract.sampling_problems(cfg) == [], path

    pipeline = contract.pipeline_for_test(cfg)
    frames, channels, height, width = contract.input_shape(tiny(pipeline))
    reads = contract.backbone_sampling(cfg.model)
    views = contract.pipeline_views(pipeline, reads.num_segments)
    per_view = frames // views
    assert per_view * views == frames
    if reads.num_segments is not None:
        assert per_view == reads.frames, path

    model = build(reduced_model_cfg(cfg.model))
    shown = min(views, MAX_VIEWS)
    inputs = torch.randint(
        0, 256, (per_view * shown, channels, height, width),
        dtype=torch.uint8)
    from mmaction.structures import ActionDataSample
    with torch.no_grad():
        (result, ) = model.test_step(
            dict(inputs=[inputs], data_samples=[ActionDataSample()]))
    num_classes = cfg.model.cls_head.num_classes
    assert result.pred_score.shape == (num_classes, ), path
    assert torch.isfinite(result.pred_score).all()
    if cfg.model.cls_head.get('average_clips', None) == 'prob':
        assert float(result.pred_score.sum()) == pytest.approx(1, abs=1e-4)
