# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""tools/analysis/check_videos.py finds unreadable and short videos and
writes a cleaned list."""
# mmaction_tdx first: its compat fixes make `mmaction.datasets` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest

from mmaction_tdx.datasets.video_checks import (
    OK,
    TOO_SHORT,
    UNREADABLE,
    check_video,
    check_video_list,
)

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'test_datasets'))
from bad_video_files import (  # noqa: E402
    BROKEN,
    SHORT,
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
