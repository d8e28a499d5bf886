# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The TDN configs train and test as the release does.

* Optimizer: the release's main.py gives ``torch.optim.SGD`` its parameter
  groups without per-group ``lr`` / ``weight_decay``, so every parameter
  trains with one lr and one weight decay (BN and biases included). The
  optim wrapper of every resolved TDN config is built with MMEngine on a
  small model with a conv bias, a BN and a classifier, and every parameter
  must get the config's lr and decay.
* Test consensus: the configs whose published numbers come from the
  release's protocol use ViewConsensusTSNHead with one view of the
  backbone's segments.
"""
import glob
import os.path as osp

import pytest
import torch.nn as nn
from mmengine import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmaction_tdx  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TDN_CONFIGS = sorted(
    glob.glob(osp.join(ROOT, 'configs', 'tdn', '**', '*.py'),
              recursive=True))
MAIN_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'tdn', '*.py')))


class _Head(nn.Module):

    def __init__(self):
        super().__init__()
        self.fc_cls = nn.Linear(8, 3)


class _Model(nn.Module):
    """Names as in a recognizer: ``backbone.*``, ``cls_head.fc_cls``."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, bias=True), nn.BatchNorm2d(8))
        self.cls_head = _Head()


def _groups(optim_wrapper_cfg):
    init_default_scope('mmaction')  # TSMOptimWrapperConstructor's scope
    model = _Model()
    wrapper = build_optim_wrapper(model, optim_wrapper_cfg)
    groups = wrapper.optimizer.param_groups
    covered = sorted(id(p) for g in groups for p in g['params'])
    assert covered == sorted(id(p) for p in model.parameters())
    return {(g['lr'], g['weight_decay']) for g in groups}


def test_configs_found():
    assert len(MAIN_CONFIGS) >= 14 and len(TDN_CONFIGS) > len(MAIN_CONFIGS)


@pytest.mark.parametrize(
    'path', TDN_CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_one_lr_and_one_decay_for_every_parameter(path):
    cfg = Config.fromfile(path)
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'SGD'
    assert _groups(cfg.optim_wrapper.to_dict()) == {
        (optimizer.lr, optimizer.weight_decay)
    }, path
    assert cfg.optim_wrapper.clip_grad.max_norm == 20


def test_tsm_groups_are_a_named_option():
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', '_base_', 'schedules',
                 'tdn_sgd-60e_sth.py'))
    option = Config.fromfile(
        osp.join(ROOT, 'configs', '_base_', 'schedules',
                 'tdn_tsm-param-groups.py'))
    cfg.merge_from_dict(option.to_dict())
    groups = _groups(cfg.optim_wrapper.to_dict())
    # TSM-style: biases at 2x lr without decay, BN without decay.
    assert (0.02, 0) in groups and (0.01, 0) in groups, groups
    assert (0.01, 5e-4) in groups


@pytest.mark.parametrize(
    'path', MAIN_CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_release_test_consensus(path):
    cfg = Config.fromfile(path)
    head = cfg.model.cls_head
    assert head.type == 'ViewConsensusTSNHead', path
    assert head.average_clips == 'prob'
    assert head.segments_per_view == cfg.model.backbone.num_segments
