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
from mmengine.logging import print_log as module_print_log
from mmengine.registry import init_default_scope
from torch.utils.data import DataLoader

from mmaction_tdx.datasets import (
    AnnotationError,
    BrokenDataError,
    BrokenSampleRecord,
    RobustRawframeDataset,
    RobustVideoDataset,
    robust_video_dataset,
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
        assert mark == dict(index=index,
                            path=osp.join(videos['root'], rejected),
                            reason='rejected by RejectFile (returned None)')


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


def build_rawframes(tmp_path, ann, **options):
    """A test-mode ``RobustRawframeDataset`` of the frame folders in
    ``tmp_path``: 8 one-frame clips per sample, decoded, packed."""
    defaults = dict(
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
    return DATASETS.build(
        dict(
            type='RobustRawframeDataset',
            ann_file=str(ann),
            data_prefix=dict(img=str(tmp_path)),
            **dict(defaults, **options)))


def test_rawframe_dataset_skips_missing_dirs_and_frames(tmp_path, log_file):
    write_frames(str(tmp_path / 'ok'), 8)
    write_frames(str(tmp_path / 'holes'), 3)  # list says 8 frames
    ann = tmp_path / 'rawframes.txt'
    ann.write_text('ok 8 0\nmissing 8 1\nholes 8 1\n')
    dataset = build_rawframes(tmp_path, ann)

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
    dataset = build_rawframes(tmp_path, ann)

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


# Stand-ins: empty files that no decoder opens, and steps that act on the
# label alone (labels 7 and 8: no sample of the real lists has them).
def stand_in_list(tmp_path, labels, name='stand_ins.txt'):
    """``s0.mp4 label0`` ... in ``name``; returns (folder, list)."""
    root = tmp_path / 'stand_ins'
    root.mkdir(exist_ok=True)
    for i in range(len(labels)):
        (root / f's{i}.mp4').write_bytes(b'x')
    ann = tmp_path / name
    ann.write_text(''.join(f's{i}.mp4 {label}\n'
                           for i, label in enumerate(labels)))
    return str(root), str(ann)


class FailOn:
    """Raises ``errors[label]`` for a sample with that label; passes the
    others on (or returns ``output`` for them, if given)."""

    def __init__(self, errors, output=None):
        self.errors, self.output = errors, output

    def __call__(self, results):
        if results['label'] in self.errors:
            raise self.errors[results['label']]
        return results if self.output is None else self.output


def build_stand_ins(tmp_path, labels, steps, **options):
    root, ann = stand_in_list(tmp_path, labels)
    options.setdefault('broken_record_file',
                       str(tmp_path / 'broken_samples.jsonl'))
    return RobustVideoDataset(
        ann_file=ann, data_prefix=dict(video=root), pipeline=steps,
        **options)


@pytest.mark.parametrize('fraction', [-0.01, 1.01, 1.5, 2, 3])
def test_max_broken_fraction_outside_0_1_is_refused_verbatim(
        tmp_path, fraction):
    with pytest.raises(ValueError) as error:
        build_stand_ins(tmp_path, [0], [], max_broken_fraction=fraction)
    assert str(error.value) == (
        f'max_broken_fraction={fraction} must be in [0, 1] (0: stop at the '
        'first broken sample, 1: never stop)')


def test_options_and_record_file_are_kept(tmp_path):
    record = str(tmp_path / 'mine.jsonl')
    for fraction in (0, 1):
        dataset = build_stand_ins(tmp_path, [0], [], broken_record_file=record,
                                  max_broken_fraction=fraction)
        assert dataset.max_broken_fraction == fraction
        assert dataset.broken_sample_record.file == record
        assert dataset.broken_record_file_is_default is False
        assert dataset.allow_missing_labels is False
    # The hook moves the record into the run's folder.
    dataset = build_stand_ins(tmp_path, [0, 1], [FailOn({1: ValueError()})],
                              broken_record_file=None,
                              max_broken_fraction=1.0)
    assert dataset.broken_record_file_is_default is True
    moved = str(tmp_path / 'work_dir' / 'broken_samples.jsonl')
    dataset.set_broken_record_file(moved)
    assert dataset.broken_record_file_is_default is False
    assert dataset.broken_sample_record.file == moved
    assert dataset.prepare_data(1) is None
    assert list(BrokenSampleRecord(moved).refresh().distinct) == [
        osp.join(tmp_path, 'stand_ins', 's1.mp4')]


def _lines(tmp_path, text, name='odd.txt'):
    ann = tmp_path / name
    ann.write_text(text)
    return str(ann)


def _malformed(ann, fmt, problem, line, lineno=1):
    return (f'1 malformed line(s) in annotation file {ann} (expected `{fmt}` '
            f'per line):\n  {ann}:{lineno}: {problem}\n      line: {line!r}'
            '\nFix or delete these lines and start again.')


RANGE_FIX = 'fix the label, or num_classes in the dataset config if the ' \
    'list is right'
NO_LABEL = ('no label; append the class index, or set allow_missing_labels='
            'True in the dataset config if this is an unlabelled list for '
            'inference')


@pytest.mark.parametrize('cls,text,options,expected', [
    (RobustVideoDataset, 'a b.mp4,7\n', dict(delimiter=','),
     dict(filename='a b.mp4', label=7)),
    (RobustVideoDataset, 'v.mp4\n', dict(allow_missing_labels=True),
     dict(filename='v.mp4', label=-1)),
    (RobustVideoDataset, 'v.mp4 8\n', dict(num_classes=9),
     dict(filename='v.mp4', label=8)),
    (RobustRawframeDataset, 'd 2 8 7\n', dict(with_offset=True),
     dict(frame_dir='d', offset=2, total_frames=8, label=7)),
    (RobustRawframeDataset, 'd 8\n', dict(allow_missing_labels=True),
     dict(frame_dir='d', total_frames=8, label=-1)),
])
def test_list_options_reach_the_parser(tmp_path, cls, text, options,
                                       expected):
    prefix = 'video' if cls is RobustVideoDataset else 'img'
    dataset = cls(ann_file=_lines(tmp_path, text), pipeline=[],
                  data_prefix={prefix: str(tmp_path)}, **options)
    info = dataset.get_data_info(0)
    path_key = 'filename' if cls is RobustVideoDataset else 'frame_dir'
    expected = dict(expected,
                    **{path_key: osp.join(tmp_path, expected[path_key])})
    assert {k: info[k] for k in expected} == expected
    assert dataset.max_label == expected['label']


@pytest.mark.parametrize('cls,text,options,fmt,problem', [
    (RobustVideoDataset, 'v.mp4 7\n', dict(num_classes=7), 'path label',
     f'label 7 is out of range 0..6 for num_classes=7; {RANGE_FIX}'),
    (RobustVideoDataset, 'v.mp4\n', {}, 'path label', NO_LABEL),
    (RobustVideoDataset, 'v.mp4 1 7\n', dict(multi_class=True, num_classes=7),
     'path label [label ...]',
     f'label 7 is out of range 0..6 for num_classes=7; {RANGE_FIX}'),
    (RobustVideoDataset, 'v.mp4 1 2\n', {}, 'path label',
     "2 labels ['1', '2'] but multi_class=False; keep one label, or set "
     'multi_class=True (and num_classes) for a multi-label list (if a path '
     'contains spaces, set `delimiter` for video lists)'),
    (RobustRawframeDataset, 'd 8 7\n', dict(num_classes=7),
     'frame_dir total_frames label',
     f'label 7 is out of range 0..6 for num_classes=7; {RANGE_FIX}'),
    (RobustRawframeDataset, 'd 8\n', {}, 'frame_dir total_frames label',
     NO_LABEL),
    (RobustRawframeDataset, 'd 2 8 1 7\n',
     dict(with_offset=True, multi_class=True, num_classes=7),
     'frame_dir offset total_frames label [label ...]',
     f'label 7 is out of range 0..6 for num_classes=7; {RANGE_FIX}'),
    (RobustRawframeDataset, 'd 8 1 7\n', dict(multi_class=True, num_classes=7),
     'frame_dir total_frames label [label ...]',
     f'label 7 is out of range 0..6 for num_classes=7; {RANGE_FIX}'),
])
def test_malformed_lists_name_the_format_verbatim(tmp_path, cls, text,
                                                   options, fmt, problem):
    ann = _lines(tmp_path, text)
    with pytest.raises(AnnotationError) as error:
        cls(ann_file=ann, pipeline=[], **options)
    assert str(error.value) == _malformed(ann, fmt, problem, text.strip())


@pytest.mark.parametrize('options,message', [
    (dict(multi_class=True), 'multi_class=True needs num_classes (the length '
     'of the one-hot label); set num_classes in the dataset config'),
    (dict(num_classes=0), 'num_classes=0 must be positive; fix it in the '
     'dataset config'),
])
def test_impossible_label_options_are_refused(tmp_path, options, message):
    with pytest.raises(AnnotationError) as error:
        RobustVideoDataset(ann_file=_lines(tmp_path, 'v.mp4 1\n'),
                           pipeline=[], **options)
    assert str(error.value) == message


@pytest.mark.parametrize('lazy_init', [False, True])
@pytest.mark.parametrize('cls,text,fmt', [
    (RobustVideoDataset, 'a.mp4 0\nb.mp4 7\nc.mp4 3\n', 'path label'),
    (RobustRawframeDataset, 'a 8 0\nb 8 7\nc 8 3\n',
     'frame_dir total_frames label'),
])
def test_check_label_range_against_the_model(tmp_path, lazy_init, cls, text,
                                             fmt):
    ann = _lines(tmp_path, text)
    dataset = cls(ann_file=ann, pipeline=[], lazy_init=lazy_init)
    dataset.check_label_range(8, 'model.cls_head.num_classes')  # 0..7
    with pytest.raises(AnnotationError) as error:
        dataset.check_label_range(7, 'model.cls_head.num_classes')
    assert str(error.value) == _malformed(
        ann, fmt, 'label 7 is out of range 0..6 for num_classes=7; '
        'fix the label, or model.cls_head.num_classes if the list is right',
        text.splitlines()[1], lineno=2)


def test_lazily_initialised_dataset_loads_on_first_access(tmp_path):
    dataset = build_stand_ins(tmp_path, [7], [FailOn({})], lazy_init=True)
    assert dataset[0]['label'] == 7


def explode(results):
    """A plain-function step: the reason names it by its ``__name__``."""
    raise ValueError('boom')


def test_a_step_that_is_a_function_is_named_in_the_reason(tmp_path):
    dataset = build_stand_ins(tmp_path, [7], [explode],
                              max_broken_fraction=1.0)
    assert dataset.prepare_data(0) is None
    assert dataset.broken_samples == {
        osp.join(tmp_path, 'stand_ins', 's0.mp4'):
        'explode raised ValueError: boom'
    }


def test_training_replaces_with_a_random_sample(tmp_path):
    dataset = build_stand_ins(tmp_path, [7, 0, 1, 2],
                              [FailOn({7: ValueError()})],
                              max_broken_fraction=1.0)
    dataset._rand_another = lambda: 3  # MMEngine's random choice
    assert dataset[0]['label'] == 2  # not the next sample, label 0


def test_refetch_limit_error_names_the_first_failure_verbatim(tmp_path):
    """Every sample broken, each its own way: the files, not the pipeline;
    the error quotes the first failure and the record."""
    dataset = build_stand_ins(
        tmp_path, [7, 8, 7, 8],
        [FailOn({7: ValueError('seven'), 8: KeyError('eight')})],
        max_broken_fraction=1.0, test_mode=True, max_refetch=2)
    with pytest.raises(BrokenDataError) as error:
        dataset[0]
    assert type(error.value) is BrokenDataError
    record = str(tmp_path / 'broken_samples.jsonl')
    assert str(error.value) == (
        f'3 samples in a row of RobustVideoDataset {dataset.ann_file} could '
        f'not be loaded. The first: {tmp_path}/stand_ins/s0.mp4 (FailOn '
        f'raised ValueError: seven); broken ones are listed in {record}. Run '
        'tools/analysis/check_videos.py on the annotation file, or check the '
        'pipeline config.')


def test_samples_a_step_rejects_are_not_a_wrong_pipeline(tmp_path):
    """A step returning None for every sample is its choice, not an error:
    the run stops on the rejected samples, not on the pipeline."""
    dataset = build_stand_ins(tmp_path, [7, 8, 7, 8, 7, 8],
                              [lambda results: None],
                              max_broken_fraction=0.0, max_refetch=1)
    with pytest.raises(BrokenDataError) as error:
        dataset[0]
    assert type(error.value) is BrokenDataError
    assert str(error.value).startswith(
        f'2 samples in a row of RobustVideoDataset {dataset.ann_file} could '
        f'not be loaded. The first: {tmp_path}/stand_ins/s0.mp4 (rejected by '
        '<lambda> (returned None)); broken ones are listed in ')
    assert dataset.broken_samples == {}


def test_a_wrong_pipeline_stops_with_its_diagnosis_verbatim(tmp_path):
    dataset = build_stand_ins(tmp_path, [7] * 9, [explode], test_mode=True,
                              max_broken_fraction=1.0, max_refetch=1)
    with pytest.raises(BrokenPipelineError) as error:
        dataset[0]
    first = f'{tmp_path}/stand_ins/s0.mp4'
    assert str(error.value) == (
        f'2 samples in a row of RobustVideoDataset {dataset.ann_file} could '
        f'not be loaded. The pipeline of RobustVideoDataset '
        f'{dataset.ann_file} is wrong, not the videos: none of 5 samples '
        'tried (spread over the list) loads; 5 fail in explode with the same '
        f'error: explode raised ValueError: boom (e.g. {first}).\nFix the '
        'settings of explode in the pipeline of the dataset config (e.g. a '
        'crop size that does not fit the frames the transforms before it '
        'make, or options it does not accept) and start again. '
        'tools/analysis/check_videos.py checks files, not pipelines: it '
        'would not find this.\nThe failures met so far are listed in '
        f'{tmp_path}/broken_samples.jsonl.')


@pytest.mark.parametrize('test_mode,fate', [
    (False, 'another sample replaces it'),
    (True, 'it is left out of the metrics (BrokenSampleReportHook)'),
])
def test_broken_sample_log_line_verbatim(tmp_path, log_file, test_mode,
                                         fate):
    dataset = build_stand_ins(tmp_path, [7, 0], [FailOn({7: ValueError()})],
                              max_broken_fraction=1.0, test_mode=test_mode)
    assert dataset.prepare_data(0) is None
    path = f'{tmp_path}/stand_ins/s0.mp4'
    lines = log_lines_naming(log_file, path)
    assert len(lines) == 1 and ' - WARNING - ' in lines[0]
    assert lines[0].endswith(
        f'Skipped broken sample {path} (FailOn raised ValueError); {fate}. '
        'Each broken sample is logged once; all are listed in '
        f'{tmp_path}/broken_samples.jsonl')


@pytest.mark.parametrize('output', [dict(inputs=1), [1, 2]])
def test_an_unmarkable_replacement_is_warned_about_once(tmp_path, log_file,
                                                        output, monkeypatch):
    """A pipeline that does not pack a data sample (a dict without one, or
    not a dict at all) cannot mark a stand-in: said once per process."""
    # Counted here too: MMLogger drops a repeated warning by itself.
    said = []

    def print_log(msg, *args, **kwargs):
        said.append(msg)
        module_print_log(msg, *args, **kwargs)

    monkeypatch.setattr(robust_video_dataset, 'print_log', print_log)
    dataset = build_stand_ins(tmp_path, [7, 0, 7, 1],
                              [FailOn({7: ValueError()}, output=output)],
                              max_broken_fraction=1.0, test_mode=True)
    assert dataset[0] == output and dataset[2] == output
    assert sum('PackActionInputs' in msg for msg in said) == 1
    text = log_file.read_text()
    message = (f'RobustVideoDataset {dataset.ann_file}: the pipeline does '
               'not end in PackActionInputs, so a replacement for a broken '
               'sample cannot be marked and is evaluated in its place (the '
               'next sample counts twice in the metric).')
    lines = [line for line in text.splitlines() if message in line]
    assert len(lines) == 1 and ' - WARNING - ' in lines[0]


@pytest.mark.parametrize('cls,options,command', [
    (RobustVideoDataset, {}, ''),
    (RobustRawframeDataset, dict(with_offset=True, start_index=0),
     " --rawframes --filename-tmpl 'f_{}.png' --start-index 0 --with-offset"),
    (RobustRawframeDataset, dict(start_index=2),
     " --rawframes --filename-tmpl 'f_{}.png' --start-index 2"),
])
def test_too_many_broken_names_the_check_videos_command(tmp_path, cls,
                                                        options, command):
    prefix = 'video' if cls is RobustVideoDataset else 'img'
    if cls is RobustRawframeDataset:
        options = dict(options, filename_tmpl='f_{}.png')
    text = 'd 2 8 1\n' if options.get('with_offset') else 'd 8 1\n'
    ann = _lines(tmp_path, text if cls is RobustRawframeDataset else
                 'd.mp4 1\n')
    record = str(tmp_path / 'record.jsonl')
    dataset = cls(ann_file=ann, pipeline=[], max_broken_fraction=0.0,
                  data_prefix={prefix: str(tmp_path)},
                  broken_record_file=record, **options)
    dataset.broken_sample_record.add(str(tmp_path / 'd'), 'why')
    message = str(dataset.broken_fraction_error())
    assert f'All broken samples met so far are in {record}.\n' in message
    assert (f'`python tools/analysis/check_videos.py {ann} --data-prefix '
            f'{tmp_path}{command} --out CLEAN_LIST`') in message


class RawFrameDecode:
    """Stand-in named like MMAction2's step: the frames it was given are
    checked before it runs; it opens nothing."""

    def __call__(self, results):
        return results


class PutFrames:

    def __init__(self, **fields):
        self.fields = fields

    def __call__(self, results):
        return dict(results, **self.fields)


@pytest.mark.parametrize('line,fields,with_offset,fifo', [
    # frame i + offset is checked (1-based names, offset 2: img_00003)
    ('d 2 8 1', dict(frame_inds=np.array([1])), True, 'img_00003.jpg'),
    ('d 8 1', dict(frame_inds=np.array([2])), False, 'img_00002.jpg'),
    # no modality: RGB
    ('d 8 1', dict(frame_inds=np.array([[2]])), False, 'img_00002.jpg'),
    ('d 8 1', dict(frame_inds=np.array([3]), modality='Flow'), False, None),
    ('d 8 1', dict(frame_inds=np.array([3]), modality='RGB'), False,
     'img_00003.jpg'),
    ('d 8 1', dict(modality='RGB'), False, None),  # no frames chosen yet
])
def test_frames_given_to_rawframedecode_are_checked(tmp_path, line, fields,
                                                    with_offset, fifo):
    write_frames(str(tmp_path / 'd'), 8)
    for name in ('img_00003.jpg', 'img_00002.jpg'):
        os.unlink(tmp_path / 'd' / name)
        os.mkfifo(tmp_path / 'd' / name)

    class DropModality:

        def __call__(self, results):
            return {k: v for k, v in results.items() if k != 'modality'}

    steps = [PutFrames(**fields), RawFrameDecode()]
    if 'modality' not in fields:
        steps.insert(0, DropModality())
    dataset = RobustRawframeDataset(
        ann_file=_lines(tmp_path, line + '\n'), pipeline=steps,
        data_prefix=dict(img=str(tmp_path)), with_offset=with_offset,
        max_broken_fraction=1.0,
        broken_record_file=str(tmp_path / 'record.jsonl'))
    data, failure = dataset._load(0)
    if fifo is None:
        assert failure is None and data['frame_dir'] == str(tmp_path / 'd')
        return
    reason = (f'frame {fifo}: not a regular file (a named pipe); '
              f'{NOT_OPENED}')
    assert data is None
    assert failure == dict(index=0, path=str(tmp_path / 'd'), reason=reason)


def test_a_missing_path_key_skips_the_file_check(tmp_path, monkeypatch):
    """A sample without a path (a dataset whose samples name none) is not
    checked; in particular not as a file called 'None'."""
    monkeypatch.chdir(tmp_path)
    os.mkfifo('None')
    dataset = build_stand_ins(tmp_path, [7], [FailOn({})])
    dataset.path_key = 'no_such_key'
    assert dataset[0]['label'] == 7
