# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""No data lost on interruption, nothing deleted outside the run (issue
23, findings 3 and 4): SafeCheckpointHook, the ``checkpoint`` hook of our
runtime bases, under SIGKILL at every point of its saves, a full disk at
several points, and resumed checkpoints that name other people's files.

One subprocess runs it all on a tiny model (checkpoint_interrupts.py);
the tests read its report. The disk tests need a small tmpfs (mounted
here as root) and are skipped, with the reason, where mounting fails."""
import json
import os
import os.path as osp
import re
import subprocess

import pytest
from mmengine.config import Config
from reliability_helpers import PYTHON, REPO_ROOT, run_tool

SCRIPT = osp.join(osp.dirname(osp.abspath(__file__)),
                  'checkpoint_interrupts.py')


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp('interrupts')
    disk = root / 'disk'
    disk.mkdir()
    mounted = subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs',
         str(disk)], capture_output=True, text=True)
    disk_reason = None if mounted.returncode == 0 else (
        'cannot mount a small tmpfs to fill the disk '
        f'({(mounted.stderr or mounted.stdout).strip()[:200]})')
    try:
        args = [PYTHON, SCRIPT, str(root / 'runs'), 'safe']
        os.makedirs(args[2])
        if disk_reason is None:
            args.append(str(disk))
        result = run_tool(
            args, env=dict(PYTHONPATH=osp.dirname(SCRIPT)), timeout=240)
    finally:
        if disk_reason is None:
            subprocess.run(['umount', str(disk)], capture_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.splitlines()[-1])
    found['disk_reason'] = disk_reason
    return found


def assert_resumable(state: dict, where) -> None:
    """What ``last_checkpoint`` names loads, with its optimizer state."""
    assert state.get('loads'), (where, state)
    assert state['optimizer'] and state['epoch'] >= 1, (where, state)


def test_sigkill_at_every_point_leaves_a_resumable_checkpoint(report):
    points = report['kill']
    assert len(points) >= 10  # every replace/remove/open of both epochs
    assert all(p['killed'] for p in points), points
    resumable = [p for p in points if p['last'] is not None]
    for point in points:
        if point['last'] is None:
            # Killed before the first checkpoint was complete: nothing to
            # resume, and no file that looks like a checkpoint but is not.
            assert point['checkpoints'] in ([], ['epoch_1.pth']), point
        else:
            assert_resumable(point, point['point'])
    # Most points come after the first save: the check is not vacuous,
    # and kills in the second epoch find that epoch's checkpoint.
    assert len(resumable) >= len(points) // 2
    assert {p['epoch'] for p in resumable} == {1, 2}


def test_full_disk_leaves_a_resumable_checkpoint(report):
    if report['disk_reason']:
        pytest.skip(report['disk_reason'])
    runs = report['disk']
    failed = [run for run in runs if run['failed']]
    assert failed, runs  # the disk did fill up
    for run in runs:
        assert_resumable(run, run['spare_pages'])
    for run in failed:
        # The error says what happened and what is left to resume from.
        assert 'the disk is full' in run['error'], run
        assert f"{run['last']} is still there to resume from" in \
            run['error'], run


def test_resume_deletes_nothing_outside_the_run(report):
    """A crafted message hub naming any file as ``best_ckpt``, and a copy
    of a colleague's checkpoint naming theirs: both survive the resumed
    runs' new bests, with a warning saying why."""
    resume = report['resume']
    assert resume['victim'], 'a file outside the work dir was deleted'
    assert resume['colleague_best'], "the colleague's best was deleted"
    log = resume['log']
    assert re.search(
        r"names '[^']*/precious\.pth' as its best checkpoint \(best_ckpt\);"
        r" it is not a best_\* file in this run's checkpoint directory", log)
    assert re.search(r"names '[^']*/colleague/best_acc_epoch_2\.pth' as its "
                     'best checkpoint', log)
    assert "keeps ['/../x', 2] as its kept checkpoints" in log


def test_runtime_bases_use_the_safe_hook():
    for name in ('default_runtime.py', 'quickstart_runtime.py'):
        cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', '_base_', name))
        assert cfg.default_hooks.checkpoint.type == 'SafeCheckpointHook'
