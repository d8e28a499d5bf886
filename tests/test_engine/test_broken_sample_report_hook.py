# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""A Runner over a dataset with broken videos trains, validates and tests;
BrokenSampleReportHook reports per epoch and stops over the limit."""
import os.path as osp
import re
import sys
import uuid
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mmaction_tdx  # noqa: F401  (compat fixes first)
from mmaction_tdx.datasets import BrokenDataError
# Until the package imports mmaction_tdx.engine itself:
from mmaction_tdx.engine.hooks import BrokenSampleReportHook
from mmaction_tdx.engine.hooks.broken_sample_report_hook import \
    find_broken_sample_datasets
from mmengine.dataset import ConcatDataset, RepeatDataset
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.model import BaseModel
from mmengine.runner import Runner

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'test_datasets'))
from bad_video_files import (BROKEN, SHORT, clip_pipeline,  # noqa: E402
                             make_bad_video_set, write_video_list)


class TinyRecognizer(BaseModel):
    """Mean grey value -> linear -> 2 classes; enough to run the loops."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        grey = torch.stack([clip.float().mean() / 255 for clip in inputs])
        logits = self.fc(grey[:, None])
        if mode == 'loss':
            labels = torch.cat([sample.gt_label for sample in data_samples])
            return dict(loss=F.cross_entropy(logits, labels))
        if mode == 'predict':
            return data_samples
        return logits


class CountSamples(BaseMetric):
    """Counts the samples evaluated (replacements included)."""

    def process(self, data_batch, data_samples):
        self.results.extend(sample['gt_label'] for sample in data_samples)

    def compute_metrics(self, results):
        return dict(num_samples=len(results))


@pytest.fixture
def videos(tmp_path):
    root = tmp_path / 'videos'
    root.mkdir()
    names = make_bad_video_set(str(root), num_good=5)
    order = names['good'] + names['broken'] + names['short']  # 10 lines
    ann = write_video_list(str(tmp_path / 'list.txt'), order)
    return dict(root=str(root), ann=ann, order=order)


def loader(videos, num_workers, test_mode=False, **dataset_options):
    return dict(
        batch_size=2,
        num_workers=num_workers,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=not test_mode),
        dataset=dict(
            type='RobustVideoDataset',
            ann_file=videos['ann'],
            data_prefix=dict(video=videos['root']),
            pipeline=clip_pipeline(test_mode=test_mode),
            test_mode=test_mode,
            **dataset_options))


def make_runner(tmp_path, videos, num_workers, max_broken_fraction):
    options = dict(max_broken_fraction=max_broken_fraction)
    return Runner(
        model=TinyRecognizer(),
        work_dir=str(tmp_path / 'work'),
        experiment_name=f'bad_data_{uuid.uuid4().hex}',
        train_dataloader=loader(videos, num_workers, **options),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        val_dataloader=loader(videos, num_workers, test_mode=True, **options),
        val_cfg=dict(),
        val_evaluator=Evaluator([CountSamples()]),
        test_dataloader=loader(
            videos, num_workers, test_mode=True, **options),
        test_cfg=dict(),
        test_evaluator=Evaluator([CountSamples()]),
        default_hooks=dict(checkpoint=None),
        custom_hooks=[dict(type='BrokenSampleReportHook')],
        default_scope='mmaction',
        env_cfg=dict(dist_cfg=dict(backend='gloo')))


def read_log(runner):
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


@pytest.mark.parametrize('num_workers', [0, 2])
def test_runner_trains_validates_and_tests_through_broken_videos(
        tmp_path, videos, num_workers):
    runner = make_runner(tmp_path, videos, num_workers, 0.5)  # 4 of 10

    runner.train()
    metrics = runner.test()

    log = read_log(runner)
    # Every epoch reports its count; each broken index is visited once per
    # epoch (more if a random replacement is broken too).
    for title in ('train epoch 1', 'train epoch 2', 'val', 'test'):
        found = re.findall(
            rf'Broken samples, {title}: (\d+) skipped and replaced; '
            r'4 distinct broken of 10 so far \(40.0%, limit 50.0%\)', log)
        assert found, title
        assert all(int(hits) >= len(BROKEN) for hits in found), title
    assert len(re.findall(r'Broken samples, val: ', log)) == 2
    # Val/test replace with the next sample, so all 10 are evaluated.
    assert metrics['num_samples'] == 10
    # Each broken path is logged once per dataset (train, val, test), over
    # all epochs and workers; the short video is fine.
    for name in BROKEN:
        path = osp.join(videos['root'], name)
        assert log.count(f'Skipped broken sample {path} (') == 3, name
    assert f'Skipped broken sample {osp.join(videos["root"], SHORT)}' \
        not in log
    # The records live in the run's log directory.
    record_dir = osp.join(runner.log_dir, 'broken_samples')
    for mode in ('train', 'val', 'test'):
        assert osp.exists(osp.join(record_dir, f'{mode}.jsonl')), mode


def test_runner_stops_when_too_many_videos_are_broken(tmp_path, videos):
    runner = make_runner(tmp_path, videos, 0, 0.2)  # 4 of 10 > 20 %

    with pytest.raises(BrokenDataError) as error:
        runner.train()

    message = str(error.value)
    assert 'more than max_broken_fraction=0.2 allows' in message
    assert any(
        osp.join(videos['root'], name) in message for name in BROKEN)
    assert 'check_videos.py' in message


def test_hook_raises_at_epoch_end_if_the_dataset_did_not(tmp_path, videos):
    """E.g. the limit was lowered while workers were running."""
    runner = make_runner(tmp_path, videos, 0, 1.0)
    runner.train_loop  # build
    dataset = runner.train_dataloader.dataset
    hook = report_hook(runner)
    hook.before_train_epoch(runner)
    for index in range(len(dataset)):
        dataset[index]
    dataset.max_broken_fraction = 0.1

    with pytest.raises(BrokenDataError, match='4 of 10 samples'):
        hook.after_train_epoch(runner)


def report_hook(runner):
    return next(hook for hook in runner.hooks
                if isinstance(hook, BrokenSampleReportHook))


def test_hook_warns_about_datasets_that_do_not_skip(tmp_path, videos):
    runner = make_runner(tmp_path, videos, 0, 1.0)
    runner.train_loop.dataloader = SimpleNamespace(dataset=[1, 2, 3])

    report_hook(runner).before_train_epoch(runner)

    assert 'the train dataset (list) does not skip broken samples' in \
        read_log(runner)


def test_hook_finds_datasets_inside_wrappers(tmp_path, videos):
    runner = make_runner(tmp_path, videos, 0, 1.0)
    dataset = runner.train_dataloader.dataset
    wrapped = ConcatDataset([RepeatDataset(dataset, times=2), dataset])

    assert find_broken_sample_datasets(wrapped) == [dataset, dataset]
    assert find_broken_sample_datasets([1, 2]) == []
