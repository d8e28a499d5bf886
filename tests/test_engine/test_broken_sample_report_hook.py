# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""A Runner over a dataset with broken videos trains, validates and tests;
BrokenSampleReportHook reports per epoch and stops over the limit."""
# mmaction_tdx first: its compat fixes make `mmaction.datasets` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import os.path as osp
import re
import sys
import uuid
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmaction.evaluation import AccMetric
from mmengine import load
from mmengine.dataset import ConcatDataset, RepeatDataset
from mmengine.evaluator import BaseMetric, DumpResults, Evaluator
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from mmaction_tdx.datasets import (
    AnnotationError,
    BrokenDataError,
    BrokenSampleRecord,
)
from mmaction_tdx.datasets.robust_video_dataset import LEFT_OUT_KEY

# Until the package imports mmaction_tdx.engine itself:
from mmaction_tdx.engine.hooks import BrokenSampleReportHook
from mmaction_tdx.engine.hooks.broken_sample_report_hook import (
    LeaveOutBrokenSamples,
    find_broken_sample_datasets,
    wrap_metrics,
)

NUM_CLASSES = 10

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'test_datasets'))
from bad_video_files import (  # noqa: E402
    BROKEN,
    SHORT,
    clip_pipeline,
    make_bad_video_set,
    write_video_list,
)


class TinyRecognizer(BaseModel):
    """Mean grey value -> linear -> ``num_classes`` classes; enough to run
    the loops. ``cls_head.num_classes`` is what the label check reads."""

    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        self.fc = nn.Linear(1, num_classes)
        self.cls_head = nn.Module()
        self.cls_head.num_classes = num_classes
        self.forward_calls = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.forward_calls += 1
        grey = torch.stack([clip.float().mean() / 255 for clip in inputs])
        logits = self.fc(grey[:, None])
        if mode == 'loss':
            labels = torch.cat([sample.gt_label for sample in data_samples])
            return dict(loss=F.cross_entropy(logits, labels))
        if mode == 'predict':
            return data_samples
        return logits


class CountSamples(BaseMetric):
    """Counts the samples evaluated and lists their labels."""

    def process(self, data_batch, data_samples):
        self.results.extend(int(sample['gt_label']) for sample in data_samples)

    def compute_metrics(self, results):
        return dict(num_samples=len(results), labels=sorted(results))


@pytest.fixture
def videos(tmp_path):
    """5 good, 4 broken, 1 short video; each line its own label (0..9), so
    that a stand-in counted in a metric shows as a label counted twice."""
    root = tmp_path / 'videos'
    root.mkdir()
    names = make_bad_video_set(str(root), num_good=5)
    order = names['good'] + names['broken'] + names['short']  # 10 lines
    ann = write_video_list(
        str(tmp_path / 'list.txt'), order, num_classes=NUM_CLASSES)
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


def make_runner(tmp_path, videos, num_workers, max_broken_fraction,
                model=None):
    options = dict(max_broken_fraction=max_broken_fraction)
    return Runner(
        model=model or TinyRecognizer(),
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
    titles = [
        r'train epoch 1', r'val \(epoch 1, iter 5\)', r'train epoch 2',
        r'val \(epoch 2, iter 10\)', r'test'
    ]
    reports = re.findall(
        r'Broken samples, (.*): (\d+) failed loads, (each replaced by another '
        r'sample|left out of the metrics); 4 distinct broken of 10 so far '
        r'\(40.0%, limit 50.0%\)', log)
    assert [title for title, _, _ in reports] == [
        re.sub(r'\\', '', title) for title in titles
    ]
    for title, hits, what in reports:
        # Train: each broken index once (more if a random replacement is
        # broken too). Val/test: the 4 consecutive broken lines fail
        # 4 + 3 + 2 + 1 times (each tries the next index).
        if title.startswith('train'):
            assert int(hits) >= len(BROKEN), title
            assert what == 'each replaced by another sample'
        else:
            assert int(hits) == 10, title
            assert what == 'left out of the metrics'
    # Val/test leave the 4 broken videos out: the 5 good ones and the short
    # one are evaluated, once each (each line has its own label; counting
    # the replacements would add four 9s of the short video, and a broken
    # line's own label 5..8 is no evaluated sample's).
    assert metrics['num_samples'] == 6
    assert metrics['labels'] == [0, 1, 2, 3, 4, 9]
    left_out = re.findall(
        r'(.*): CountSamples over 6 of 10 listed videos; 4 left out: (.*)',
        log)
    assert [title.split(' - ')[-1] for title, _ in left_out] == [
        re.sub(r'\\', '', title) for title in titles
        if not title.startswith('train')
    ]
    for name in BROKEN:
        assert osp.join(videos['root'], name) + ' (' in left_out[-1][1], name
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


def test_hook_raises_at_epoch_end_on_what_other_processes_found(
        tmp_path, videos):
    """E.g. other ranks (sharing the log directory) met broken samples
    that this rank's dataset has not checked against the limit."""
    runner = make_runner(tmp_path, videos, 0, 0.5)
    dataset = runner.train_dataloader.dataset
    hook = report_hook(runner)
    hook.before_train_epoch(runner)
    other_rank = BrokenSampleRecord(dataset.broken_sample_record.file)
    for i in range(6):
        other_rank.add(f'/other/rank/{i}.mp4', 'not found')

    with pytest.raises(BrokenDataError) as error:
        hook.after_train_epoch(runner)

    assert str(error.value).startswith('6 of 10 samples (60.0%)')
    assert '/other/rank/0.mp4: not found' in str(error.value)
    assert 'train epoch 1: 6 failed loads' in read_log(runner)
    assert dataset.broken_sample_record.file == osp.join(
        runner.log_dir, 'broken_samples', 'train.jsonl')


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
    repeated = RepeatDataset(dataset, times=2)
    concatenated = ConcatDataset([dataset, dataset])

    assert find_broken_sample_datasets(repeated) == [dataset]
    assert find_broken_sample_datasets(concatenated) == [dataset, dataset]
    assert find_broken_sample_datasets([1, 2]) == []


def test_metrics_are_wrapped_once_and_dumps_keep_every_video(tmp_path):
    count = CountSamples()
    dump = DumpResults(out_file_path=str(tmp_path / 'dump.pkl'))
    evaluator = Evaluator([count, dump])

    wrap_metrics(evaluator, 'test')
    wrap_metrics(evaluator, 'test')  # every epoch: no wrapper of a wrapper

    wrapper, same_dump = evaluator.metrics
    assert isinstance(wrapper, LeaveOutBrokenSamples)
    assert wrapper.metric is count and same_dump is dump
    mark = dict(index=1, path='b.mp4', reason='not found')
    evaluator.process([
        dict(gt_label=0), dict(gt_label=1, **{LEFT_OUT_KEY: mark}),
        dict(gt_label=1)
    ])
    metrics = evaluator.evaluate(3)
    assert metrics['num_samples'] == 2  # the stand-in for b.mp4 left out
    assert metrics['labels'] == [0, 1]
    # The dump has all three, the stand-in marked.
    dumped = load(str(tmp_path / 'dump.pkl'))
    assert [sample.get(LEFT_OUT_KEY) for sample in dumped] == [
        None, mark, None
    ]


@pytest.mark.parametrize('mode', ['train', 'test'])
def test_labels_beyond_the_head_stop_the_run_before_the_first_batch(
        tmp_path, videos, mode):
    """Labels 0..9 for a head of 5 classes: training would crash mid-epoch
    (IndexError in the loss), testing would score them as misses."""
    runner = make_runner(tmp_path, videos, 0, 1.0,
                         model=TinyRecognizer(num_classes=5))

    with pytest.raises(AnnotationError) as error:
        runner.train() if mode == 'train' else runner.test()

    assert runner.model.forward_calls == 0
    message = str(error.value)
    for lineno in range(6, 11):
        assert (f'{videos["ann"]}:{lineno}: label {lineno - 1} is out of '
                'range 0..4 for num_classes=5; fix the label, or '
                'model.cls_head.num_classes if the list is right') in message
    assert f'{videos["ann"]}:5: ' not in message


def test_the_epoch_line_only_when_a_load_failed(tmp_path, videos):
    runner = make_runner(tmp_path, videos, 0, 1.0)
    dataset = runner.train_dataloader.dataset
    hook = report_hook(runner)

    hook.before_train_epoch(runner)
    hook.after_train_epoch(runner)
    assert 'Broken samples, ' not in read_log(runner)

    hook.before_train_epoch(runner)
    dataset.broken_sample_record.add('/x/a.mp4', 'not found')
    hook.after_train_epoch(runner)
    assert 'Broken samples, train epoch 1: 1 failed loads' in read_log(runner)


def test_a_stand_in_with_a_label_no_real_sample_has_is_left_out():
    """The stand-in is scored wrong and has a class (7) that no evaluated
    sample has: counted, it would lower the accuracy and add a class."""
    accuracy, labels = AccMetric(), CountSamples()
    evaluator = Evaluator([accuracy, labels])
    wrap_metrics(evaluator, 'test')
    mark = dict(index=2, path='c.mp4', reason='not found')

    def sample(label, predicted, **meta):
        scores = torch.zeros(NUM_CLASSES)
        scores[predicted] = 1
        return dict(gt_label=torch.tensor([label]), pred_score=scores,
                    **meta)

    evaluator.process([
        sample(0, 0), sample(1, 1),
        sample(7, 3, **{LEFT_OUT_KEY: mark}),
        sample(1, 1)
    ])
    metrics = evaluator.evaluate(4)

    assert metrics['acc/top1'] == 1.0
    assert metrics['num_samples'] == 3
    assert metrics['labels'] == [0, 1, 1]
