# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""tools/analysis/check_videos.py finds unreadable and short videos (and
frame folders of rawframe lists), gives each file a time limit, and writes
a cleaned list."""
# mmaction_tdx first: its compat fixes make `mmaction.datasets` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import importlib.util
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmaction_tdx.datasets import AnnotationError, RobustVideoDataset
from mmaction_tdx.datasets.video_checks import (
    OK,
    TOO_SHORT,
    UNREADABLE,
    WorkerFailure,
    check_rawframe_list,
    check_video,
    check_video_list,
    map_with_time_limit,
)

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'test_datasets'))
from bad_video_files import (  # noqa: E402
    BROKEN,
    SHORT,
    clip_pipeline,
    copy_real_video,
    make_bad_video_set,
    write_video_list,
)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'analysis', 'check_videos.py')


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    """2 good (16 frames), 1 real (280 frames), 4 broken, 1 short (3)."""
    tmp = tmp_path_factory.mktemp('check_videos')
    root = tmp / 'videos'
    root.mkdir()
    names = make_bad_video_set(str(root), num_good=2)
    real = copy_real_video(str(root))
    order = [names['good'][0], 'truncated.mp4', real, SHORT, 'empty.mp4',
             'missing.mp4', names['good'][1], 'not_a_video.mp4']
    ann = write_video_list(str(tmp / 'list.txt'), order)
    with open(ann) as f:
        lines = f.read().splitlines()
    return dict(root=str(root), ann=ann, order=order, lines=lines, tmp=tmp)


def kept_names(videos, min_frames):
    too_short = {SHORT} if min_frames > 3 else set()
    return [
        name for name in videos['order']
        if name not in BROKEN and name not in too_short
    ]


@pytest.mark.parametrize('decoder,nproc', [('decord', 1), ('decord', 2),
                                           ('opencv', 1)])
def test_finds_unreadable_and_short_videos_and_writes_a_clean_list(
        videos, decoder, nproc):
    out = str(videos['tmp'] / f'clean_{decoder}_{nproc}.txt')

    report = check_video_list(
        videos['ann'],
        data_prefix=videos['root'],
        min_frames=8,
        decoder=decoder,
        nproc=nproc,
        out=out)

    assert report.summary() == (
        f'checked 8, unreadable 4, too short 1, kept 3 -> {out}')
    verdicts = {
        osp.basename(check.path): check
        for _, check in report.checks
    }
    assert verdicts['missing.mp4'].reason == 'not found'
    assert verdicts['empty.mp4'].reason == 'empty file (0 bytes)'
    for name in ('truncated.mp4', 'not_a_video.mp4'):
        assert verdicts[name].status == UNREADABLE
        assert verdicts[name].reason.startswith('not a decodable video')
    assert verdicts[SHORT].status == TOO_SHORT
    assert verdicts[SHORT].num_frames == 3
    assert verdicts['real.mp4'].status == OK
    assert verdicts['real.mp4'].num_frames == 280
    # Line numbers point into the list; kept lines are copied verbatim.
    assert [n for n, _ in report.problems] == [2, 4, 5, 6, 8]
    expected = [
        line for line in videos['lines']
        if line.split()[0] in kept_names(videos, 8)
    ]
    with open(out) as f:
        assert f.read().splitlines() == expected == report.kept_lines


def test_short_videos_are_kept_by_default(videos):
    report = check_video_list(videos['ann'], data_prefix=videos['root'])
    assert report.summary() == 'checked 8, unreadable 4, too short 0, kept 4'
    assert any(line.startswith(SHORT) for line in report.kept_lines)


def test_check_video_alone(videos):
    path = osp.join(videos['root'], SHORT)
    assert check_video(path) == check_video(path, min_frames=3)
    assert check_video(path).status == OK
    assert check_video(path, min_frames=4).reason == \
        '3 frames, fewer than min_frames=4'


def test_unknown_decoder_is_rejected(videos):
    with pytest.raises(ValueError, match="decoder='pyav'"):
        check_video_list(videos['ann'], decoder='pyav')


def load_tool():
    spec = importlib.util.spec_from_file_location('check_videos_tool', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_cli_prints_problems_progress_and_summary(videos, capsys):
    out = str(videos['tmp'] / 'clean_cli.txt')

    code = load_tool().main([
        videos['ann'], '--data-prefix', videos['root'], '--min-frames', '8',
        '--out', out, '--nproc', '1'
    ])

    printed = capsys.readouterr().out
    assert code == 0
    assert '8/8' in printed  # the progress bar
    assert (f'unreadable: {videos["ann"]}:6: '
            f'{osp.join(videos["root"], "missing.mp4")}: not found') in printed
    assert f'too short: {videos["ann"]}:4: ' in printed
    assert printed.splitlines()[-1] == (
        f'checked 8, unreadable 4, too short 1, kept 3 -> {out}')


def test_cli_runs_as_a_script(videos):
    done = subprocess.run(
        [sys.executable, TOOL, videos['ann'], '--data-prefix',
         videos['root'], '--nproc', '1'],
        capture_output=True,
        text=True,
        timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == \
        'checked 8, unreadable 4, too short 0, kept 4'


def test_a_named_pipe_is_refused_at_once_and_the_others_are_checked(
        videos, tmp_path):
    """A named pipe makes a decoder wait for ever for data; it is refused
    by its file type before any decoder opens it (as the robust datasets
    refuse it), not after the time limit."""
    os.mkfifo(tmp_path / 'hangs.mp4')
    ann = write_video_list(
        str(tmp_path / 'list.txt'),
        [osp.join(videos['root'], 'good_0.mp4'), 'hangs.mp4',
         osp.join(videos['root'], 'good_1.mp4'),
         osp.join(videos['root'], 'empty.mp4')])
    start = time.monotonic()

    report = check_video_list(
        ann, data_prefix=str(tmp_path), nproc=2, timeout=30)

    assert time.monotonic() - start < 15  # not the 30 s time limit
    assert report.summary() == \
        'checked 4, unreadable 2, too short 0, kept 2'
    (_, hung), (_, empty) = report.problems
    assert hung.path == str(tmp_path / 'hangs.mp4')
    assert hung.reason == 'not a regular file (a named pipe)'
    assert empty.reason == 'empty file (0 bytes)'


def test_the_checker_and_the_dataset_agree_on_what_is_broken(
        videos, tmp_path):
    """One definition of broken: each file the dataset skips is unreadable
    for the checker with the same reason (the checker's file facts stop
    before the transform's name), and no other file."""
    os.mkfifo(tmp_path / 'pipe.mp4')
    names = [osp.join(videos['root'], name) for name in videos['order']
             if name != 'real.mp4']  # 280 frames: slow, and good
    ann = write_video_list(str(tmp_path / 'list.txt'),
                           names + [str(tmp_path / 'pipe.mp4')])
    init_default_scope('mmaction')
    dataset = RobustVideoDataset(
        ann, clip_pipeline(test_mode=True), test_mode=True,
        max_broken_fraction=1.0,
        broken_record_file=str(tmp_path / 'broken.jsonl'))
    for index in range(len(dataset)):
        dataset[index]

    # In a worker with a time limit: a checker opening the pipe would hang.
    report = check_video_list(ann, nproc=1, timeout=10)

    checker = {check.path: check.reason for _, check in report.problems}
    assert sorted(checker) == sorted(dataset.broken_samples)
    assert len(checker) == len(BROKEN) + 1
    for path, reason in dataset.broken_samples.items():
        assert reason.startswith(checker[path]), (reason, checker[path])


def sleep_or_crash(seconds):
    """Sleep; a negative time kills the process as a segfaulting decoder
    does."""
    if seconds < 0:
        os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(seconds)
    return os.getpid()


def test_map_with_time_limit_keeps_task_order_and_replaces_workers():
    tasks = [0.0, 30.0, 0.0, -1, 0.0, 30.0, 0.0, 'x']  # seconds to sleep
    outcomes = map_with_time_limit(
        sleep_or_crash, tasks, nproc=2, timeout=1)
    assert outcomes[7].reason.startswith('checking raised TypeError')
    for index in (1, 5):
        assert isinstance(outcomes[index], WorkerFailure)
        assert outcomes[index].reason.startswith(
            'timed out: checking took more than 1 s')
    assert outcomes[3] == WorkerFailure(
        'the checking process died (exit code -11), e.g. the decoder '
        'crashed on this file')
    # The others ran in worker processes, replaced ones included.
    pids = [outcomes[i] for i in (0, 2, 4, 6)]
    assert all(isinstance(pid, int) and pid != os.getpid() for pid in pids)
    assert len(set(pids)) >= 2


def write_frames(frame_dir, num_frames, tmpl='img_{:05}.jpg', skip=()):
    os.makedirs(frame_dir)
    for i in range(1, num_frames + 1):
        if i not in skip:
            cv2.imwrite(
                osp.join(frame_dir, tmpl.format(i)),
                np.full((12, 16, 3), 10 * i, np.uint8))


@pytest.fixture(scope='module')
def rawframes(tmp_path_factory):
    """Frame folders: 2 good, 1 short, 1 missing, 1 with a missing frame,
    1 with a frame that is not an image, 1 with an empty frame, 1 whose
    frame is a named pipe (would hang a reader)."""
    root = tmp_path_factory.mktemp('rawframes')
    write_frames(str(root / 'good_a'), 8)
    write_frames(str(root / 'good_b'), 6)
    write_frames(str(root / 'short'), 2)
    write_frames(str(root / 'hole'), 8, skip=(5, ))
    write_frames(str(root / 'not_image'), 8)
    (root / 'not_image' / 'img_00008.jpg').write_text('not an image\n')
    write_frames(str(root / 'empty_frame'), 8)
    (root / 'empty_frame' / 'img_00001.jpg').write_bytes(b'')
    write_frames(str(root / 'hangs'), 8, skip=(5, ))
    os.mkfifo(root / 'hangs' / 'img_00005.jpg')  # the middle frame
    lines = ['good_a 8 0', 'hole 8 1', 'short 2 0', 'missing 8 1',
             'not_image 8 0', '', 'good_b 6 1', 'empty_frame 8 0',
             'hangs 8 1']
    ann = root / 'list.txt'
    ann.write_text('\n'.join(lines) + '\n')
    return dict(root=str(root), ann=str(ann), lines=lines)


@pytest.mark.parametrize('nproc', [1, 2])
def test_rawframe_list_finds_missing_bad_and_hanging_frames(
        rawframes, tmp_path, nproc):
    out = str(tmp_path / 'clean.txt')

    report = check_rawframe_list(
        rawframes['ann'], data_prefix=rawframes['root'], min_frames=4,
        nproc=nproc, timeout=1, out=out)

    assert report.summary() == (
        f'checked 8, unreadable 5, too short 1, kept 2 -> {out}')
    reasons = {
        osp.basename(check.path): (lineno, check.status, check.reason)
        for lineno, check in report.checks
    }
    root = rawframes['root']
    assert reasons['good_a'] == (1, OK, '')
    assert reasons['good_b'] == (7, OK, '')
    assert reasons['hole'] == (2, UNREADABLE, (
        '1 of 8 listed frames missing (first: img_00005.jpg); re-extract '
        'the frames, or fix total_frames in the list (or filename_tmpl / '
        'start_index)'))
    assert reasons['short'] == (3, TOO_SHORT,
                                '2 frames, fewer than min_frames=4')
    assert reasons['missing'] == (4, UNREADABLE, 'not found')
    assert reasons['not_image'] == (
        5, UNREADABLE, 'frame img_00008.jpg: cannot be decoded')
    assert reasons['empty_frame'] == (
        8, UNREADABLE, 'frame img_00001.jpg: empty file (0 bytes)')
    # Refused by its file type (before the 1 s limit), like the dataset.
    assert reasons['hangs'] == (
        9, UNREADABLE, 'frame img_00005.jpg: not a regular file (a named '
        'pipe)')
    assert report.checks[0][1].path == osp.join(root, 'good_a')
    with open(out) as f:
        assert f.read().splitlines() == ['good_a 8 0', 'good_b 6 1']


def test_rawframe_list_uses_the_dataset_frame_options(tmp_path):
    # Something-Something V1 layout: 00001.jpg ..., and an offset column.
    write_frames(str(tmp_path / 'v1'), 6, tmpl='{:05}.jpg')
    ann = tmp_path / 'list.txt'
    ann.write_text('v1 2 4 3\nv1 3 4 3\n')  # frames 3..6 exist, 4..7 not

    report = check_rawframe_list(
        str(ann), data_prefix=str(tmp_path), filename_tmpl='{:05}.jpg',
        with_offset=True)

    assert [check.status for _, check in report.checks] == [OK, UNREADABLE]
    assert 'first: 00007.jpg' in report.checks[1][1].reason


def test_rawframe_list_with_malformed_lines_says_which(tmp_path):
    ann = tmp_path / 'list.txt'
    ann.write_text('a 8 0\nb eight 1\n')
    with pytest.raises(AnnotationError, match=r'list.txt:2: total_frames'):
        check_rawframe_list(str(ann), data_prefix=str(tmp_path))


def test_cli_checks_rawframe_lists(rawframes, capsys):
    code = load_tool().main([
        rawframes['ann'], '--rawframes', '--data-prefix', rawframes['root'],
        '--nproc', '2', '--timeout', '1'
    ])

    printed = capsys.readouterr().out
    assert code == 0
    assert (f'unreadable: {rawframes["ann"]}:4: '
            f'{osp.join(rawframes["root"], "missing")}: not found') in printed
    assert printed.splitlines()[-1] == \
        'checked 8, unreadable 5, too short 0, kept 3'
