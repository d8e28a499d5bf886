# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Bad configurations fail at build time or at the first forward, with a
message that names the setting and the fix (issue 7, "bad configs")."""
import os.path as osp

import pytest
import torch
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from reliability_helpers import (
    SIZE,
    data_options,
    make_synthetic_data,
    quickstart_config,
    shipped_configs,
    single_thread,  # noqa: F401 (autouse)
)

from mmaction_tdx.engine import SamplingConfigError
from mmaction_tdx.engine.hooks.sampling_check_hook import sampling_problems

T = 4  # segments of the tiny models


def tdrl_recognizer(backbone=None, loss_td=None):
    """Config of a ResNet-18 TDRL recognizer with the TD loss."""
    return dict(
        type='SegmentRecognizer2D',
        backbone=dict(
            dict(type='ResNetTDRL', depth=18, pretrained=None, num_segments=T),
            **(backbone or {})),
        cls_head=dict(
            type='TSNTDHead',
            num_classes=3,
            in_channels=512,
            loss_td=dict(type='TemporalDiversityLoss', **(loss_td or {}))),
        data_preprocessor=dict(type='ActionDataPreprocessor'))


def tdn_recognizer(backbone=None):
    """Config of a ResNet-18 TDN recognizer (5 frames per segment)."""
    return dict(
        type='SegmentRecognizer2D',
        backbone=dict(
            dict(type='ResNetTDN', depth=18, pretrained=None, num_segments=T),
            **(backbone or {})),
        cls_head=dict(type='TSNHead', num_classes=3, in_channels=512),
        data_preprocessor=dict(type='ActionDataPreprocessor'))


def build(cfg):
    init_default_scope('mmaction')
    return MODELS.build(cfg)


def loss_forward(model, samples: int, frames: int):
    """The first training forward on ``samples`` clips of ``frames``
    frames each (64x64)."""
    torch.manual_seed(0)
    inputs = torch.randn(samples, frames, 3, SIZE, SIZE)
    data_samples = [
        ActionDataSample().set_gt_label(i % 3) for i in range(samples)
    ]
    model.train()
    return model(inputs, data_samples, mode='loss')


def test_well_formed_configs_train():
    """The reference: the same models with matching inputs do not raise,
    so the errors below are caused by the settings they change."""
    losses = loss_forward(build(tdrl_recognizer()), samples=2, frames=T)
    assert {'loss_cls', 'loss_td'} <= set(losses)
    losses = loss_forward(build(tdn_recognizer()), samples=1, frames=T * 5)
    assert torch.isfinite(losses['loss_cls'])


# --- frames per sample != num_segments x clip_len --------------------------


def test_frame_count_not_num_segments_times_clip_len():
    """2 samples of 2 frames fold into 4 = num_segments frames, which the
    backbone alone cannot tell from 1 sample of 4: the recognizer checks
    each sample."""
    model = build(tdrl_recognizer())
    with pytest.raises(ValueError) as info:
        loss_forward(model, samples=2, frames=2)
    message = str(info.value)
    assert 'num_segments=4' in message
    assert 'a sample has 2 frames' in message
    assert 'SampleFrames(clip_len=1, num_clips=4)' in message
    assert 'model.backbone.num_segments' in message


# --- TDN without clip_len=5 -------------------------------------------------


def test_tdn_without_clip_len_5_fails_at_first_forward():
    """``SampleFrames(clip_len=1, num_clips=4)`` gives 4 frames; TDN needs
    5 consecutive frames for each of its 4 segments."""
    model = build(tdn_recognizer())
    with pytest.raises(ValueError) as info:
        loss_forward(model, samples=1, frames=T)
    message = str(info.value)
    assert '5 consecutive frames per segment' in message
    assert 'SampleFrames(clip_len=5, frame_interval=1, num_clips=4)' \
        in message


@pytest.fixture(scope='module')
def synthetic_data(tmp_path_factory):
    return make_synthetic_data(str(tmp_path_factory.mktemp('synthetic')))


def test_tdn_without_clip_len_5_fails_at_build_time(synthetic_data,
                                                    tmp_path):
    """``clip_len=1, num_clips=20`` gives the 20 = 4 x 5 frames TDN
    expects, so no shape check can catch it; the runner's
    ``SamplingCheckHook`` (every config of ours has it) refuses it before
    the first iteration."""
    cfg = Config.fromfile(quickstart_config('tdn'))
    cfg.merge_from_dict(data_options(synthetic_data, num_train=2))
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'SampleFrames':
            step.update(clip_len=1, num_clips=20)
    cfg.work_dir = str(tmp_path)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    with pytest.raises(SamplingConfigError) as info:
        runner.train()
    message = str(info.value)
    assert ('train_dataloader.dataset.pipeline SampleFrames(clip_len=1, '
            'num_clips=20)') in message
    assert 'ResNetTDN reads 5 consecutive frame(s) per segment' in message
    assert 'SampleFrames(clip_len=5, frame_interval=1, num_clips=4)' \
        in message
    assert not osp.exists(osp.join(str(tmp_path), 'epoch_1.pth'))


def test_shipped_configs_sample_what_their_backbone_reads():
    """No false alarms: the check passes for the quick-start and main
    configs of ours (the ablations share their pipelines)."""
    checked, backbones = 0, {}
    for path, cfg in shipped_configs():
        if 'model' not in cfg or 'train_dataloader' not in cfg:
            continue  # a base config (model, data or schedule only)
        # The sampling contract does not depend on the depth: build the
        # backbone as ResNet-18, which is quick, once per design.
        backbone_cfg = dict(cfg.model.backbone, depth=18, pretrained=None)
        key = repr(sorted(backbone_cfg.items()))
        if key not in backbones:
            backbones[key] = build(backbone_cfg)
        backbone = backbones[key]
        if not hasattr(backbone, 'frames_per_segment'):
            continue  # MMAction2's own backbones are not checked
        assert sampling_problems(cfg, backbone.num_segments,
                                 backbone.frames_per_segment,
                                 type(backbone).__name__) == [], path
        checked += 1
    assert checked >= 2  # the TDN and TDRL quick-start configs at least


# --- stage indices outside the valid range ----------------------------------

STAGE_CASES = {
    'tdrl_out_indices': (tdrl_recognizer(dict(out_indices=(4, ))),
                         ['`out_indices` (4,)', '[0, 3]', '0 = layer1']),
    'tdrl_frozen_stages': (tdrl_recognizer(dict(frozen_stages=5)),
                           ['`frozen_stages`', '-1', 'layer1-layer4']),
    'tdrl_td_blocks_stages':
    (tdrl_recognizer(dict(td_blocks=((), (-1, ), (-1, ), (-1, ), (-1, )))),
     ['`td_blocks`', 'per stage', '((), (-1,), (-1,), (-1,))']),
    'tdrl_td_blocks_index':
    (tdrl_recognizer(dict(td_blocks=((), (5, ), (-1, ), (-1, )))),
     ['`td_blocks[1]`', 'layer2 of ResNet-18 has 2 blocks', '[-2, 1]']),
    'tdn_out_indices': (tdn_recognizer(dict(out_indices=(0, 4))),
                        ['`out_indices` (0, 4)', '[0, 3]', '0 = layer1']),
    'tdn_long_term_stages': (tdn_recognizer(dict(long_term_stages=(2, 6))),
                             ['long_term_stages', 'stages 2-5',
                              '1 = stem']),
    'tdn_short_term_stages': (tdn_recognizer(dict(short_term_stages=(2, 3))),
                              ['short_term_stages', 'starting at the stem',
                               '(1, 2)']),
}


@pytest.mark.parametrize('case', sorted(STAGE_CASES))
def test_stage_index_out_of_range_fails_at_build(case):
    cfg, expected = STAGE_CASES[case]
    with pytest.raises(ValueError) as info:
        build(cfg)
    for text in expected:
        assert text in str(info.value), (text, str(info.value))


# --- TD-loss ratio outside [0, 1] --------------------------------------------


@pytest.mark.parametrize('ratio', [1.5, -0.1])
def test_td_loss_ratio_outside_unit_interval_fails_at_build(ratio):
    with pytest.raises(ValueError) as info:
        build(tdrl_recognizer(loss_td=dict(ratio=ratio)))
    message = str(info.value)
    assert '`ratio`' in message and '[0, 1]' in message
    assert f'got {ratio}' in message and 'uses 0.5' in message


# --- num_segments < 2 with a loss on pairs of segments ----------------------


def test_single_segment_with_td_loss_fails_at_build():
    """Without PEM, only the TD loss needs pairs of segments: the backbone
    refuses to provide TD features for one segment."""
    no_pem = dict(num_segments=1, enhancement_module=None)
    with pytest.raises(ValueError) as info:
        build(tdrl_recognizer(no_pem))
    message = str(info.value)
    assert 'num_segments=1' in message
    assert 'pairs of segments' in message
    assert 'model.backbone.num_segments' in message
    assert 'remove `loss_td`' in message
    # Without the TD loss one segment is a valid (if static) model.
    cfg = tdrl_recognizer(no_pem)
    cfg['cls_head'].pop('loss_td')
    assert build(cfg).backbone.num_segments == 1


def test_single_segment_with_pem_fails_at_build():
    """TDRL's default PEM also works on adjacent segments."""
    with pytest.raises(ValueError) as info:
        build(tdrl_recognizer(dict(num_segments=1)))
    message = str(info.value)
    assert 'ProgressiveEnhancementModule compares adjacent segments' \
        in message
    assert 'got 1' in message and 'model.backbone.num_segments' in message
    assert 'enhancement_module=None' in message


def test_single_segment_in_td_loss_config_fails_at_build():
    with pytest.raises(ValueError) as info:
        build(tdrl_recognizer(loss_td=dict(num_segments=1)))
    message = str(info.value)
    assert '`num_segments` must be an integer >= 2' in message
    assert 'remove `loss_td`' in message
