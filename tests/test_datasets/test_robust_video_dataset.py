# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Robust datasets skip broken samples, log each once and stop when too
many are broken; short videos repeat their last frame and are fine."""
# mmaction_tdx first: its compat fixes make `mmaction.datasets` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import contextlib
import json
import multiprocessing
import os
import os.path as osp
import pickle
import tempfile
import threading
import time
import uuid

import cv2
import numpy as np
import pytest
from bad_video_files import (
    BROKEN,
    SHORT,
    clip_pipeline,
    make_bad_video_set,
    write_video_list,
)
from mmaction.registry import DATASETS
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from torch.utils.data import DataLoader

from mmaction_tdx.datasets import (
    BrokenDataError,
    BrokenSampleRecord,
    RobustRawframeDataset,
    RobustVideoDataset,
)
from mmaction_tdx.datasets.broken_samples import (
    NUM_SAMPLES_TO_DIAGNOSE,
    BrokenPipelineError,
    common_failure,
    fraction_exceeded,
)
from mmaction_tdx.datasets.robust_video_dataset import LEFT_OUT_KEY

CLIP_SHAPE = (40, 3, 16, 16)  # 8 clips x 5 frames, NCHW


@pytest.fixture(autouse=True)
def mmaction_scope():
    init_default_scope('mmaction')


@pytest.fixture
def log_file(tmp_path):
    """A fresh current MMLogger writing to a file (forked workers too)."""
    path = tmp_path / 'run.log'
    MMLogger.get_instance(f'test_{uuid.uuid4().hex}', log_file=str(path))
    return path


@pytest.fixture
def videos(tmp_path):
    """Folder with 4 good, 4 broken and 1 short video; list of all 9."""
    root = tmp_path / 'videos'
    root.mkdir()
    names = make_bad_video_set(str(root))
    order = names['good'][:2] + names['broken'] + names['short'] + \
        names['good'][2:]
    ann = write_video_list(str(tmp_path / 'list.txt'), order)
    record = str(tmp_path / 'broken_samples.jsonl')
    return dict(root=str(root), ann=ann, order=order, record=record, **names)


def build(videos, **options) -> RobustVideoDataset:
    options.setdefault('broken_record_file', videos['record'])
    return DATASETS.build(
        dict(
            type='RobustVideoDataset',
            ann_file=videos['ann'],
            data_prefix=dict(video=videos['root']),
            pipeline=clip_pipeline(test_mode=options.get('test_mode', False)),
            **options))


def log_lines_naming(log_file, path):
    text = log_file.read_text() if log_file.exists() else ''
    return [line for line in text.splitlines()
            if f'Skipped broken sample {path} (' in line]


@pytest.mark.parametrize('num_workers', [0, 2])
def test_broken_videos_are_skipped_replaced_and_logged_once(
        videos, log_file, num_workers):
    dataset = build(videos, max_broken_fraction=1.0)
    loader = DataLoader(
        dataset,
        batch_size=3,
        num_workers=num_workers,
        persistent_workers=False,
        collate_fn=pseudo_collate)

    for _epoch in range(2):
        shapes = [tuple(x.shape) for batch in loader for x in batch['inputs']]
        assert shapes == [CLIP_SHAPE] * len(dataset)  # all 9 replaced

    broken = dataset.broken_samples
    paths = {name: osp.join(videos['root'], name) for name in BROKEN}
    assert list(sorted(broken)) == sorted(paths.values())
    assert broken[paths['missing.mp4']].startswith('not found')
    assert broken[paths['empty.mp4']].startswith('empty file (0 bytes)')
    for name in ('truncated.mp4', 'not_a_video.mp4'):
        assert broken[paths[name]].startswith('not a decodable video')
        assert 'DecordInit raised RuntimeError' in broken[paths[name]]
    # Every broken index is visited once per epoch, plus unlucky refetches.
    assert dataset.broken_sample_record.num_events >= 2 * len(BROKEN)
    # Logged once per path over 2 epochs and (with workers) 2 processes.
    for path in paths.values():
        assert len(log_lines_naming(log_file, path)) == 1, path
    assert not log_lines_naming(log_file, osp.join(videos['root'], SHORT))


def test_pickled_copies_share_one_record(videos):
    """Spawned workers get a pickled copy; it must write to the same file
    and see what the others wrote."""
    dataset = build(videos, max_broken_fraction=1.0)
    copy = pickle.loads(pickle.dumps(dataset))
    broken_index = videos['order'].index('empty.mp4')

    assert copy.prepare_data(broken_index) is None

    assert copy.broken_sample_record.file == \
        dataset.broken_sample_record.file
    assert list(dataset.broken_samples) == [
        osp.join(videos['root'], 'empty.mp4')
    ]


def test_short_video_repeats_its_last_frame_and_is_not_broken(videos):
    dataset = build(videos, max_broken_fraction=0.0)
    index = videos['order'].index(SHORT)

    clip = dataset[index]['inputs']

    assert tuple(clip.shape) == CLIP_SHAPE
    # Frames 0, 1, 2 have grey values 100, 110, 120 (lossy mp4v: +-4).
    # Each 5-frame clip of the 3-frame video is frames 0 1 2 2 2.
    greys = clip[:, 0, 8, 8].float().reshape(8, 5).numpy()
    expected = np.tile([100, 110, 120, 120, 120], (8, 1))
    np.testing.assert_allclose(greys, expected, atol=4)
    assert dataset.broken_samples == {}
    assert not osp.exists(videos['record'])


# With workers, torch takes 10 s to shut the workers down after one raised
# (any exception, not ours); the Runner test covers workers.
@pytest.mark.parametrize('num_workers', [0])
def test_too_many_broken_samples_stop_the_run_naming_paths_and_fix(
        videos, log_file, num_workers):
    # 1 broken of 9 is 11 % > the default 5 %.
    dataset = build(videos)
    assert dataset.max_broken_fraction == 0.05
    loader = DataLoader(
        dataset,
        batch_size=3,
        num_workers=num_workers,
        collate_fn=pseudo_collate)

    with pytest.raises(BrokenDataError) as error:
        for _ in loader:
            pass

    message = str(error.value)
    assert osp.join(videos['root'], 'truncated.mp4') in message
    assert 'max_broken_fraction=0.05' in message
    assert 'tools/analysis/check_videos.py ' + videos['ann'] in message
    assert f'--data-prefix {videos["root"]}' in message


def test_within_the_limit_no_error(videos):
    dataset = build(videos, max_broken_fraction=0.5)  # 4 of 9 = 44 %
    for index in range(len(dataset)):
        assert tuple(dataset[index]['inputs'].shape) == CLIP_SHAPE
    assert dataset.broken_fraction_error() is None
    dataset.max_broken_fraction = 0.4
    assert isinstance(dataset.broken_fraction_error(), BrokenDataError)


def test_fraction_limit_boundaries():
    assert not fraction_exceeded(1, 20, 0.05)
    assert fraction_exceeded(2, 20, 0.05)
    assert not fraction_exceeded(0, 10, 0.0)
    assert fraction_exceeded(1, 10, 0.0)
    assert not fraction_exceeded(10, 10, 1.0)


def test_default_record_is_a_fresh_temporary_file_made_on_demand(videos):
    first = build(videos, broken_record_file=None)
    second = build(videos, broken_record_file=None)
    assert first.broken_record_file_is_default
    file = first.broken_sample_record.file
    assert file != second.broken_sample_record.file
    assert osp.dirname(file) == tempfile.gettempdir()
    assert not osp.exists(file)  # until a sample is broken


def test_max_broken_fraction_is_validated(videos):
    with pytest.raises(ValueError, match='max_broken_fraction'):
        build(videos, max_broken_fraction=5)


def test_test_mode_replaces_with_the_next_sample_deterministically(videos):
    dataset = build(videos, test_mode=True, max_broken_fraction=1.0)
    first_broken = videos['order'].index('truncated.mp4')
    next_good = videos['order'].index(SHORT)  # after the 4 broken ones

    replaced = dataset[first_broken]

    expected = dataset[next_good]
    assert replaced['data_samples'].gt_label == \
        expected['data_samples'].gt_label
    assert (replaced['inputs'] == expected['inputs']).all()
    assert len(dataset.broken_samples) == len(BROKEN)
    # The stand-in is marked, so that the metric leaves it out.
    mark = replaced['data_samples'].metainfo[LEFT_OUT_KEY]
    assert mark['index'] == first_broken
    assert mark['path'] == osp.join(videos['root'], 'truncated.mp4')
    assert mark['reason'].startswith('not a decodable video')
    assert LEFT_OUT_KEY not in expected['data_samples'].metainfo


class Raise:
    """A pipeline step that raises ``exc`` for every sample, counting its
    calls."""

    def __init__(self, exc):
        self.exc, self.calls = exc, 0

    def __call__(self, results):
        self.calls += 1
        raise self.exc


class RejectFile:
    """A pipeline step that rejects one file (returns None, the stock way
    to skip a sample) and passes the others on."""

    def __init__(self, name):
        self.name = name

    def __call__(self, results):
        return None if osp.basename(results['filename']) == self.name \
            else results


def build_with_steps(videos, steps, **options):
    options.setdefault('broken_record_file', videos['record'])
    return RobustVideoDataset(
        ann_file=videos['ann'],
        data_prefix=dict(video=videos['root']),
        pipeline=steps,
        **options)


@pytest.mark.parametrize('test_mode', [False, True])
def test_refetch_limit_raises_after_exactly_max_refetch_plus_one_tries(
        videos, test_mode):
    step = Raise(RuntimeError('cannot decode'))
    dataset = build_with_steps(
        videos, [step],
        max_refetch=3,
        max_broken_fraction=1.0,
        test_mode=test_mode)

    with pytest.raises(BrokenPipelineError, match='4 samples in a row'):
        dataset[0]

    # The sample itself and 3 replacements are recorded; then, before
    # stopping, samples spread over the list are tried to tell a wrong
    # pipeline from broken files (not recorded).
    assert dataset.broken_sample_record.refresh().num_events == 4
    assert step.calls == 4 + NUM_SAMPLES_TO_DIAGNOSE


@pytest.mark.parametrize('test_mode', [False, True])
def test_a_rejected_sample_is_replaced_but_not_recorded_as_broken(
        videos, log_file, test_mode):
    # Only good videos, so that a random replacement is never broken.
    videos = dict(videos, order=videos['good'])
    videos['ann'] = write_video_list(
        osp.join(osp.dirname(videos['ann']), 'good.txt'), videos['order'])
    rejected = videos['good'][0]
    steps = [RejectFile(rejected)] + clip_pipeline(test_mode=test_mode)
    dataset = build_with_steps(
        videos, steps, max_broken_fraction=0.0, test_mode=test_mode)
    index = videos['order'].index(rejected)

    data = dataset[index]

    assert tuple(data['inputs'].shape) == CLIP_SHAPE
    assert dataset.broken_samples == {}
    assert not osp.exists(videos['record'])
    assert not log_lines_naming(log_file, osp.join(videos['root'], rejected))
    if test_mode:  # the next line stands in, marked as left out
        assert int(data['data_samples'].gt_label) == \
            videos['order'].index(videos['good'][1]) % 2
        mark = data['data_samples'].metainfo[LEFT_OUT_KEY]
        assert mark['index'] == index
        assert mark['reason'] == 'rejected by RejectFile (returned None)'


@pytest.mark.parametrize('exc', [MemoryError, KeyboardInterrupt])
def test_memory_error_and_interrupt_propagate_and_are_not_counted(
        videos, exc):
    step = Raise(exc())
    dataset = build_with_steps(videos, [step], max_broken_fraction=1.0)

    with pytest.raises(exc):
        dataset[0]

    assert step.calls == 1
    assert dataset.broken_samples == {}
    assert not osp.exists(videos['record'])


def write_frames(frame_dir, num_frames):
    os.makedirs(frame_dir)
    for i in range(1, num_frames + 1):
        cv2.imwrite(
            osp.join(frame_dir, f'img_{i:05}.jpg'),
            np.full((12, 16, 3), 10 * i, np.uint8))


def test_rawframe_dataset_skips_missing_dirs_and_frames(tmp_path, log_file):
    write_frames(str(tmp_path / 'ok'), 8)
    write_frames(str(tmp_path / 'holes'), 3)  # list says 8 frames
    ann = tmp_path / 'rawframes.txt'
    ann.write_text('ok 8 0\nmissing 8 1\nholes 8 1\n')
    dataset = DATASETS.build(
        dict(
            type='RobustRawframeDataset',
            ann_file=str(ann),
            data_prefix=dict(img=str(tmp_path)),
            max_broken_fraction=1.0,
            broken_record_file=str(tmp_path / 'broken_samples.jsonl'),
            test_mode=True,
            pipeline=[
                dict(type='SampleFrames', clip_len=1, num_clips=8,
                     test_mode=True),
                dict(type='RawFrameDecode'),
                dict(type='FormatShape', input_format='NCHW'),
                dict(type='PackActionInputs'),
            ]))

    labels = [int(dataset[i]['data_samples'].gt_label) for i in range(3)]

    assert labels == [0, 0, 0]  # both broken ones replaced by 'ok'
    broken = dataset.broken_samples
    assert broken[str(tmp_path / 'missing')].startswith('not found')
    assert broken[str(tmp_path / 'holes')].startswith(
        'RawFrameDecode raised FileNotFoundError')
    # Marked as stand-ins: the metric leaves both broken ones out.
    marks = [
        dataset[i]['data_samples'].metainfo.get(LEFT_OUT_KEY, {}).get('path')
        for i in range(3)
    ]
    assert marks == [None, str(tmp_path / 'missing'), str(tmp_path / 'holes')]
    # Over the limit, the fix names the rawframe options of check_videos.
    dataset.max_broken_fraction = 0.5
    message = str(dataset.broken_fraction_error())
    assert (f'check_videos.py {ann} --data-prefix {tmp_path} --rawframes '
            "--filename-tmpl 'img_{:05}.jpg' --out CLEAN_LIST") in message


def _add_many(file, path, times):
    record = BrokenSampleRecord(file)
    return [record.add(path, f'pid {os.getpid()}') for _ in range(times)]


def test_record_logs_a_path_once_across_processes(tmp_path):
    file = str(tmp_path / 'sub' / 'record.jsonl')
    context = multiprocessing.get_context('fork')
    with context.Pool(4) as pool:
        results = pool.starmap(_add_many, [(file, 'same.mp4', 5)] * 4)

    firsts = [first for result in results for first in result]
    assert firsts.count(True) == 1
    record = BrokenSampleRecord(file).refresh()
    assert record.num_events == 20
    assert list(record.distinct) == ['same.mp4']


def test_record_recovers_from_a_torn_line(tmp_path):
    file = tmp_path / 'record.jsonl'
    record = BrokenSampleRecord(str(file))
    assert record.add('a.mp4', 'reason a')
    with open(file, 'a') as f:
        f.write('{"path": "torn.mp')  # a process killed mid-write

    assert record.add('b.mp4', 'reason b')
    assert not BrokenSampleRecord(str(file)).add('b.mp4', 'again')

    fresh = BrokenSampleRecord(str(file)).refresh()
    assert list(fresh.distinct) == ['a.mp4', 'b.mp4']
    assert fresh.num_events == 3
    lines = file.read_text().splitlines()
    assert json.loads(lines[-1])['reason'] == 'again'


@pytest.mark.parametrize('ann_file,hint', [
    ('data/synthetic_motion/train_list.txt',
     'run `python tools/data/generate_synthetic_motion.py '
     'data/synthetic_motion`, or `make demo`'),
    ('data/kinetics400/kinetics400_train_list_videos.txt',
     'Prepare kinetics400 as MMAction2 does (its '
     'tools/data/kinetics/README.md'),
    ('lists/mine.txt', 'Check `ann_file` (and `data_root`, `data_prefix`)'),
])
def test_a_missing_list_says_how_to_get_the_data(tmp_path, ann_file, hint):
    with pytest.raises(FileNotFoundError) as error:
        RobustVideoDataset(
            ann_file=str(tmp_path / ann_file), pipeline=[])
    assert str(error.value).startswith(
        f'annotation file {tmp_path / ann_file} not found')
    assert hint.replace('data/synthetic_motion`',
                        f'{tmp_path}/data/synthetic_motion`') in \
        str(error.value)


@contextlib.contextmanager
def unjammed(fifo):
    """After 2 s, keep opening and closing the write end of the named pipe
    ``fifo``: a reader blocked on it (what the tests below guard against)
    then reads end-of-file and fails, instead of hanging the suite."""
    stop = threading.Event()

    def unjam():
        if stop.wait(2):
            return
        while not stop.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader waiting
                pass
            stop.wait(0.05)

    thread = threading.Thread(target=unjam, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


NOT_OPENED = 'not opened (reading it could block for ever)'


@pytest.mark.parametrize('test_mode', [False, True])
def test_a_named_pipe_in_the_list_is_refused_without_opening_it(
        videos, tmp_path, test_mode):
    fifo = osp.join(videos['root'], 'pipe.mp4')
    os.mkfifo(fifo)
    order = videos['good'][:2] + ['pipe.mp4'] + videos['good'][2:]
    videos = dict(videos, order=order, ann=write_video_list(
        str(tmp_path / 'pipe.txt'), order))
    dataset = build(videos, test_mode=test_mode, max_broken_fraction=1.0)

    with unjammed(fifo):
        start = time.monotonic()
        data = dataset[2]
        seconds = time.monotonic() - start

    assert seconds < 2  # before the pipe is unjammed
    assert tuple(data['inputs'].shape) == CLIP_SHAPE
    assert dataset.broken_samples == {
        fifo: f'not a regular file (a named pipe); {NOT_OPENED}'
    }


def test_a_named_pipe_among_frames_is_refused_without_opening_it(
        tmp_path):
    write_frames(str(tmp_path / 'ok'), 8)
    write_frames(str(tmp_path / 'piped'), 8)
    fifo = tmp_path / 'piped' / 'img_00005.jpg'
    fifo.unlink()
    os.mkfifo(fifo)
    ann = tmp_path / 'rawframes.txt'
    ann.write_text('piped 8 1\nok 8 0\n')
    dataset = RobustRawframeDataset(
        ann_file=str(ann),
        data_prefix=dict(img=str(tmp_path)),
        max_broken_fraction=1.0,
        broken_record_file=str(tmp_path / 'broken_samples.jsonl'),
        test_mode=True,
        pipeline=[
            dict(type='SampleFrames', clip_len=1, num_clips=8,
                 test_mode=True),
            dict(type='RawFrameDecode'),
            dict(type='FormatShape', input_format='NCHW'),
            dict(type='PackActionInputs'),
        ])

    with unjammed(str(fifo)):
        data = dataset[0]

    assert int(data['data_samples'].gt_label) == 0  # 'ok' stands in
    assert dataset.broken_samples == {
        str(tmp_path / 'piped'): 'frame img_00005.jpg: not a regular file '
        f'(a named pipe); {NOT_OPENED}'
    }


def wrong_three_crop_pipeline(test_mode):
    """The clip pipeline with a ThreeCrop that fits no frame: its crop
    must span the frame's height or width (16 x 16 here)."""
    steps = clip_pipeline(test_mode=test_mode)
    steps.insert(-2, dict(type='ThreeCrop', crop_size=8))
    return steps


@pytest.mark.parametrize('test_mode', [False, True])
def test_a_wrong_pipeline_is_named_as_such_not_as_broken_videos(
        videos, test_mode):
    # 4 good, 4 broken files and a short one: some samples fail in the
    # decoder, every decodable one in ThreeCrop.
    dataset = build_with_steps(
        videos, wrong_three_crop_pipeline(test_mode), test_mode=test_mode)

    with pytest.raises(BrokenPipelineError) as error:
        for index in range(len(dataset)):
            dataset[index]

    message = str(error.value)
    assert message.startswith(f'The pipeline of RobustVideoDataset '
                              f'{videos["ann"]} is wrong, not the videos: ')
    assert 'samples tried (spread over the list) loads; 3 fail in ' \
        'ThreeCrop with the same error: ThreeCrop raised AssertionError' \
        in message
    assert 'Fix the settings of ThreeCrop in the pipeline' in message
    assert 'max_broken_fraction' not in message


@pytest.mark.parametrize('test_mode', [False, True])
def test_one_broken_video_among_good_ones_stays_broken_data(
        videos, tmp_path, test_mode):
    order = videos['good'][:2] + ['truncated.mp4'] + videos['good'][2:]
    videos = dict(videos, order=order, ann=write_video_list(
        str(tmp_path / 'one_broken.txt'), order))
    dataset = build(videos, test_mode=test_mode, max_broken_fraction=0.0)

    with pytest.raises(BrokenDataError) as error:
        dataset[2]

    assert not isinstance(error.value, BrokenPipelineError)
    message = str(error.value)
    assert message.startswith('1 of 5 samples (20.0%) of RobustVideoDataset')
    assert osp.join(videos['root'], 'truncated.mp4') + ': not a decodable' \
        in message
    assert 'tools/analysis/check_videos.py ' + videos['ann'] in message


def test_a_wrong_data_prefix_is_named_as_such(videos, tmp_path):
    dataset = build(dict(videos, root=str(tmp_path / 'elsewhere')))

    with pytest.raises(BrokenPipelineError) as error:
        dataset[0]

    message = str(error.value)
    assert message.startswith(f'The paths of RobustVideoDataset '
                              f'{videos["ann"]} are wrong, not the videos')
    assert f"Fix `data_prefix` (now '{tmp_path / 'elsewhere'}')" in message


def test_only_broken_files_each_its_own_way_stay_broken_data(
        videos, tmp_path):
    """None of them loads, but they fail in different ways: the files."""
    order = list(BROKEN)
    videos = dict(videos, order=order, ann=write_video_list(
        str(tmp_path / 'all_broken.txt'), order))
    dataset = build(videos, test_mode=True)

    with pytest.raises(BrokenDataError) as error:
        dataset[0]

    assert not isinstance(error.value, BrokenPipelineError)
    assert str(error.value).startswith('1 of 4 samples (25.0%)')


def test_common_failure_needs_every_try_failing_mostly_the_same_way():
    same = [(f'/d/v{i}.mp4', f'Crop raised E: /d/v{i}.mp4 has {i}0 px')
            for i in range(5)]
    other = ('/d/x.mp4', 'not found; DecordInit raised FileNotFoundError')

    # Paths and numbers do not make failures different.
    assert common_failure(same[:3], 3) == (same[0][0], same[0][1], 3)
    assert common_failure(same[:3] + [other] * 2, 5) == (
        same[0][0], same[0][1], 3)
    # Some sample loaded (fewer failures than tries): the files' fault.
    assert common_failure(same[:4], 5) is None
    # No failure shared by more than half of the tries, or only one try.
    assert common_failure(same[:2] + [other] * 2, 4) is None
    assert common_failure(same[:1], 1) is None
    assert common_failure([], 0) is None
