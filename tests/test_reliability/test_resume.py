# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""A run killed mid-epoch and restarted with ``--resume`` continues from
its last checkpoint and logs the losses of an uninterrupted run (issue 7,
"interruptions").

Setup, and why the equality is meaningful:

* ``IterBasedTrainLoop`` with iteration checkpoints. On resume it advances
  the dataloader by the number of finished iterations, so the resumed run
  sees exactly the batches the uninterrupted run saw next, also in the
  middle of an epoch. (``EpochBasedTrainLoop`` of MMEngine 0.10 restarts
  the interrupted epoch from its first batch: the position of the sampler
  is not checkpointed, so only epoch-boundary checkpoints resume exactly
  there.)
* The sampler shuffles (``DefaultSampler``, seeded by the run's seed and
  the epoch), the checkpoint at iteration 2 lies in the middle of the
  first epoch (4 iterations), and the run crosses into the second epoch
  after resuming: order, position and reshuffling must all be restored.
* A learning-rate schedule changes the rate every iteration and AdamW
  keeps moments: scheduler and optimizer states must be restored.
* Determinism on CPU: fixed seed, ``deterministic=True``,
  ``num_workers=0``, one thread, no dropout (the torch RNG is not
  checkpointed, and dropout would draw from it), a window of 1 for the
  logged losses (the raw loss of each iteration).
* The interruption is a real ``SIGKILL`` (no clean-up, no final
  checkpoint), sent by the training process to itself at the start of
  iteration 4, after the checkpoint of iteration 2 and the completed
  iteration 3 (whose work is lost and redone).
"""
import glob
import json
import os
import os.path as osp
import subprocess

import pytest
from reliability_helpers import (
    PYTHON,
    REPO_ROOT,
    make_synthetic_data,
    quickstart_config,
    run_tool,
    write_config,
)

MAX_ITERS = 5
CHECKPOINT_INTERVAL = 2
KILL_BEFORE_ITER = 3  # 0-based: the process dies as iteration 4 starts

KILL_SWITCH = '''
"""Kills its own training process like an out-of-memory killer would."""
import os
import signal

from mmaction.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class KillAtIterHook(Hook):

    def __init__(self, iteration):
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)
'''


def base_config(data_root: str) -> str:
    """The quick-start TDRL model, iteration-based and deterministic."""
    return f'''
model = dict(cls_head=dict(dropout_ratio=0.0))
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters={MAX_ITERS},
    val_interval=1000)
val_cfg = None
val_dataloader = None
val_evaluator = None
param_scheduler = [
    dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0,
         end={MAX_ITERS})
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval={CHECKPOINT_INTERVAL}, by_epoch=False,
                    max_keep_ckpts=-1, save_last=False, save_best=None))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, deterministic=True)
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        indices=8,
        ann_file='{data_root}/train_list.txt',
        data_prefix=dict(video='{data_root}/videos')))
'''


def train_command(config: str, work_dir: str, *extra: str) -> list:
    return [
        PYTHON,
        osp.join(REPO_ROOT, 'tools', 'train.py'), config, '--work-dir',
        work_dir, *extra
    ]


def logged_iterations(work_dir: str) -> dict:
    """``{iteration: scalars}`` from the json logs of all runs in
    ``work_dir``, the last run winning."""
    scalars = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'loss' in record:
                    scalars[record['iter']] = record
    return scalars


def assert_same_training(expected: dict, actual: dict, iterations) -> None:
    for it in iterations:
        for key in ('loss', 'loss_cls', 'loss_td', 'lr'):
            assert actual[it][key] == pytest.approx(
                expected[it][key], rel=1e-6, abs=1e-9), (it, key)


def test_killed_run_resumes_with_identical_losses(tmp_path):
    data_root = make_synthetic_data(str(tmp_path / 'data'))
    base = write_config(
        str(tmp_path / 'resume_base.py'), quickstart_config('tdrl'),
        base_config(data_root))
    (tmp_path / 'kill_switch.py').write_text(KILL_SWITCH)
    killed_cfg = write_config(
        str(tmp_path / 'killed.py'), base,
        "custom_imports = dict(imports=['mmaction_tdx', 'kill_switch'])\n"
        f'custom_hooks = [dict(type="KillAtIterHook", '
        f'iteration={KILL_BEFORE_ITER})]')
    straight_dir = str(tmp_path / 'uninterrupted')
    killed_dir = str(tmp_path / 'interrupted')

    # The uninterrupted reference and the run that gets killed, side by
    # side (two cores).
    env = dict(PYTHONPATH=str(tmp_path))
    reference = subprocess.Popen(
        train_command(base, straight_dir),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, 'OMP_NUM_THREADS': '1'})
    try:
        killed = run_tool(train_command(killed_cfg, killed_dir), env=env)
        _, reference_err = reference.communicate(timeout=300)
    finally:
        if reference.poll() is None:
            reference.kill()
    assert reference.returncode == 0, reference_err[-3000:]
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL

    with open(osp.join(killed_dir, 'last_checkpoint')) as f:
        assert f.read().strip().endswith(f'iter_{CHECKPOINT_INTERVAL}.pth')
    lost = logged_iterations(killed_dir)
    assert sorted(lost) == list(range(1, KILL_BEFORE_ITER + 1))

    resumed = run_tool(train_command(base, killed_dir, '--resume'))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    output = resumed.stdout + resumed.stderr
    assert f'iter_{CHECKPOINT_INTERVAL}.pth' in output
    assert f'resumed epoch: 0, iter: {CHECKPOINT_INTERVAL}' in output
    next_checkpoint = f'iter_{2 * CHECKPOINT_INTERVAL}.pth'
    assert osp.isfile(osp.join(killed_dir, next_checkpoint))

    expected = logged_iterations(straight_dir)
    assert sorted(expected) == list(range(1, MAX_ITERS + 1))
    # Before the kill, and after resuming (iteration 3 is trained again).
    assert_same_training(expected, lost, range(1, KILL_BEFORE_ITER + 1))
    actual = logged_iterations(killed_dir)
    assert_same_training(expected, actual,
                         range(CHECKPOINT_INTERVAL + 1, MAX_ITERS + 1))
    # The check is not vacuous: the losses do change between iterations.
    losses = [expected[it]['loss'] for it in range(1, MAX_ITERS + 1)]
    assert len(set(losses)) == MAX_ITERS
