# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The sampling-and-view contract, and every user of its rule: the runner's
``SamplingCheckHook`` and the inference API.

Training takes exactly one view (``num_clips == T``), testing a whole
number of views (``num_clips`` a multiple of ``T``, ``twice_sample``,
``num_views``, crops), and several views need a head that scores each
view. The cases are written as plain numbers, never read from the code
under test.
"""
from types import SimpleNamespace

import pytest
from mmaction.registry import MODELS
from mmengine.config import Config

from mmaction_tdx.apis import check_pipeline_sampling, prepare_inference_config
from mmaction_tdx.datasets import sampling_contract as contract
from mmaction_tdx.engine import SamplingCheckHook, SamplingConfigError


def sampler(type='SampleFrames', **kwargs):
    return dict(type=type, **kwargs)


def pipeline(step, *crops):
    return [dict(type='DecordInit'), step, dict(type='DecordDecode'),
            dict(type='Resize', scale=(-1, 64)), *crops,
            dict(type='FormatShape', input_format='NCHW'),
            dict(type='PackActionInputs')]


CENTER = dict(type='CenterCrop', crop_size=56)


def cfg_with(train=None, test=None, head='ViewConsensusTSNHead',
             backbone=dict(type='ResNetTDRL', num_segments=8)):
    train = train or sampler(clip_len=1, num_clips=8)
    test = test or sampler(clip_len=1, num_clips=8, test_mode=True)
    return Config(
        dict(
            model=dict(
                backbone=backbone,
                cls_head=dict(type=head, num_classes=3, in_channels=8)),
            train_dataloader=dict(
                dataset=dict(pipeline=pipeline(train, CENTER))),
            test_dataloader=dict(
                dataset=dict(pipeline=pipeline(test, CENTER)))))


# --- what a pipeline yields ---

@pytest.mark.parametrize('step,crop,views,shape', [
    (sampler(clip_len=1, num_clips=8, test_mode=True), CENTER, 1,
     (8, 3, 56, 56)),
    # two views as MMAction2 writes them for TSN-style testing
    (sampler(clip_len=1, num_clips=16, test_mode=True), CENTER, 2,
     (16, 3, 56, 56)),
    (sampler(clip_len=1, num_clips=8, twice_sample=True, test_mode=True),
     dict(type='ThreeCrop', crop_size=64), 6, (48, 3, 64, 64)),
    # twice_sample is a test-mode option: one view in training
    (sampler(clip_len=1, num_clips=8, twice_sample=True), CENTER, 1,
     (8, 3, 56, 56)),
    (sampler('SegmentSampleFrames', clip_len=5, num_clips=8, num_views=10,
             test_mode=True), dict(type='TenCrop', crop_size=(48, 40)), 100,
     (4000, 3, 40, 48)),
    (sampler('DenseSampleFrames', clip_len=1, num_clips=8, test_mode=True),
     CENTER, 10, (80, 3, 56, 56)),
    (sampler('DenseSampleFrames', clip_len=1, num_clips=8,
             num_sample_positions=4, test_mode=True), CENTER, 4,
     (32, 3, 56, 56)),
    (sampler('DenseSampleFrames', clip_len=1, num_clips=8), CENTER, 1,
     (8, 3, 56, 56)),
])
def test_views_and_input_shape(step, crop, views, shape):
    steps = pipeline(step, crop)
    assert contract.pipeline_views(steps, 8) == views
    assert contract.input_shape(steps) == shape


def test_input_shape_names_what_is_missing():
    with pytest.raises(ValueError, match='CenterCrop'):
        contract.input_shape(pipeline(sampler(clip_len=1, num_clips=8)))
    # a resize to a fixed size fixes the shape, too: (w, h) -> (H, W)
    steps = [sampler(clip_len=1, num_clips=4),
             dict(type='Resize', scale=(40, 30), keep_ratio=False)]
    assert contract.input_shape(steps) == (4, 3, 30, 40)


@pytest.mark.parametrize('backbone,expected', [
    (dict(type='ResNetTDN', num_segments=4), (4, 5)),
    (dict(type='ResNetTDN', num_segments=4, short_term_tdm=None), (4, 1)),
    (dict(type='ResNetTDN', short_term_tdm=dict(
        type='ShortTermTDM', frames_per_segment=7)), (8, 7)),
    (dict(type='ResNetTDRL', num_segments=16), (16, 1)),
    # MMAction2's backbones: the constructor's default, no segment axis
    (dict(type='ResNetTSM', depth=50), (8, 1)),
    (dict(type='ResNet', depth=50), (None, 1)),
])
def test_backbone_sampling_from_a_config(backbone, expected):
    reads = contract.backbone_sampling(dict(backbone=backbone))
    assert (reads.num_segments, reads.frames_per_segment) == expected
    assert reads.name == backbone['type']


def test_backbone_sampling_of_a_built_model():
    built = SimpleNamespace(
        backbone=type('ResNetX', (), dict(num_segments=3,
                                         frames_per_segment=5))())
    assert contract.backbone_sampling(built) == contract.BackboneSampling(
        'ResNetX', 3, 5)


def test_a_new_sampler_is_registered_in_one_place():
    def read(step):
        return contract.ClipSampling('EveryNth', 1, step['segments'])

    contract.register_sampler('EveryNth', read)
    try:
        steps = pipeline(dict(type='EveryNth', segments=6, test_mode=True),
                         CENTER)
        assert contract.input_shape(steps) == (6, 3, 56, 56)
        problems = contract.pipeline_problems(
            steps, contract.BackboneSampling('B', 4), 'test')
        assert 'num_clips must be 4' in problems[0]
    finally:
        del contract.SAMPLERS['EveryNth']


# --- the rule ---

def test_two_views_sampled_as_a_multiple_pass_in_test_only():
    """Issue 23 item 7 and the false alarm of issue 21 item 2: T=8 and
    ``num_clips=16`` is two test views, but no training sample."""
    ok = cfg_with(test=sampler(clip_len=1, num_clips=16, test_mode=True))
    assert contract.sampling_problems(ok) == []
    wrong = cfg_with(train=sampler(clip_len=1, num_clips=16))
    (problem, ) = contract.sampling_problems(wrong)
    assert problem.startswith('train_dataloader.dataset.pipeline '
                              'SampleFrames(clip_len=1, num_clips=16)')
    assert 'exactly one view' in problem and 'num_clips=8' in problem


def test_training_refuses_crops_and_views():
    cfg = cfg_with()
    cfg.train_dataloader.dataset.pipeline[-3] = dict(type='ThreeCrop',
                                                     crop_size=64)
    (problem, ) = contract.sampling_problems(cfg)
    assert '3-crop' in problem


def test_test_views_must_be_whole():
    cfg = cfg_with(test=sampler(clip_len=1, num_clips=12, test_mode=True))
    (problem, ) = contract.sampling_problems(cfg)
    assert 'num_clips must be 8' in problem
    assert problem.startswith('test_dataloader')


def test_twice_sample_of_snippets_is_refused_with_the_fix():
    """MMAction2 1.2.0 draws the second half of ``twice_sample`` past the
    video's end when ``clip_len > 1``."""
    cfg = cfg_with(
        backbone=dict(type='ResNetTDN', num_segments=8),
        train=sampler(clip_len=5, num_clips=8),
        test=sampler(clip_len=5, num_clips=8, twice_sample=True,
                     test_mode=True))
    (problem, ) = contract.sampling_problems(cfg)
    assert "SegmentSampleFrames', clip_len=5" in problem
    assert 'num_views=2' in problem


@pytest.mark.parametrize('backbone', [
    dict(type='ResNetTDRL', num_segments=8),
    dict(type='ResNetTSM', depth=50, num_segments=8),
])
@pytest.mark.parametrize('test', [
    sampler(clip_len=1, num_clips=8, twice_sample=True, test_mode=True),
    sampler(clip_len=1, num_clips=16, test_mode=True),
])
def test_plain_tsn_head_with_views_names_the_per_view_head(backbone, test):
    cfg = cfg_with(test=test, head='TSNHead', backbone=backbone)
    (problem, ) = contract.sampling_problems(cfg)
    assert 'gives 2 views per video' in problem
    assert "type='ViewConsensusTSNHead', segments_per_view=8" in problem
    # one view with TSNHead is fine, and so are views with per-view heads
    assert contract.sampling_problems(cfg_with(head='TSNHead',
                                               backbone=backbone)) == []
    for head in ('ViewConsensusTSNHead', 'TSNTDHead', 'TSMHead'):
        assert contract.sampling_problems(
            cfg_with(test=test, head=head, backbone=backbone)) == []


def test_a_plain_2d_backbone_reads_any_number_of_segments():
    cfg = cfg_with(
        backbone=dict(type='ResNet', depth=50),
        train=sampler(clip_len=1, num_clips=3),
        test=sampler(clip_len=1, num_clips=25, test_mode=True),
        head='TSNHead')
    assert contract.sampling_problems(cfg) == []
    cfg.test_dataloader.dataset.pipeline[1]['clip_len'] = 5
    assert 'clip_len=1' in contract.sampling_problems(cfg)[0]


# --- users of the rule ---

def _runner(cfg, head_type, num_segments=8):
    backbone = type('ResNetTDRL', (), dict(num_segments=num_segments,
                                          frames_per_segment=1))()
    head = MODELS.build(dict(type=head_type, num_classes=3, in_channels=8))
    return SimpleNamespace(
        model=SimpleNamespace(backbone=backbone, cls_head=head), cfg=cfg)


def test_hook_accepts_two_test_views_and_binds_the_head():
    cfg = cfg_with(test=sampler(clip_len=1, num_clips=16, test_mode=True))
    runner = _runner(cfg, 'ViewConsensusTSNHead')
    SamplingCheckHook().before_run(runner)
    assert runner.model.cls_head.segments_per_view == 8


def test_hook_refuses_a_multiple_in_training():
    runner = _runner(cfg_with(train=sampler(clip_len=1, num_clips=4)),
                     'TSNTDHead', num_segments=2)
    with pytest.raises(SamplingConfigError, match='exactly one view'):
        SamplingCheckHook().before_run(runner)


def test_hook_refuses_views_for_a_plain_tsn_head():
    cfg = cfg_with(
        test=sampler(clip_len=1, num_clips=8, twice_sample=True,
                     test_mode=True),
        head='TSNHead')
    with pytest.raises(SamplingConfigError, match='ViewConsensusTSNHead'):
        SamplingCheckHook().before_run(_runner(cfg, 'TSNHead'))


def test_inference_api_applies_the_same_rule():
    """Issue 21 item 2: the API's own sampler list lacked
    SegmentSampleFrames."""
    with pytest.raises(SamplingConfigError, match='clip_len=5'):
        check_pipeline_sampling(
            [sampler('SegmentSampleFrames', clip_len=1, num_clips=3)], 8, 5)
    cfg = cfg_with(
        test=sampler(clip_len=1, num_clips=8, twice_sample=True,
                     test_mode=True),
        head='TSNHead')
    with pytest.raises(SamplingConfigError, match='ViewConsensusTSNHead'):
        prepare_inference_config(cfg)
    cfg.model.cls_head.type = 'TSNTDHead'
    assert prepare_inference_config(cfg).test_pipeline[1][
        'twice_sample'] is True
