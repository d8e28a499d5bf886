# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Interrupt a tiny training run at every point of its checkpoint saves
(run by test_checkpoint_interrupts.py in a subprocess).

``python checkpoint_interrupts.py ROOT HOOK [DISK_ROOT]`` (``HOOK``:
``safe`` for SafeCheckpointHook, ``mmengine`` for MMEngine's) prints one
JSON line, ``{kill, resume[, disk]}``:

* ``kill``: one run counts the file operations of the saves
  (``os.replace``, ``os.remove``, ``os.unlink``); then, for every k, a
  forked copy of the run is killed with SIGKILL just before its k-th
  operation;
* ``resume``: runs resumed from checkpoints that name files outside
  their directory (:func:`resume_mode`);
* ``disk``: DISK_ROOT is a small file system; as the second epoch's
  checkpoint is saved, a filler leaves only a few pages free, for several
  sizes around one checkpoint, and the run goes on until a save fails.

After each run, the state a ``--resume`` would find: what
``last_checkpoint`` names, and whether it loads with its optimizer state.
The model, data and metric are a few lines of plain torch: each run takes
well under a second after the imports, which the forks share.
"""
import builtins
import glob
import json
import os
import os.path as osp
import shutil
import signal
import sys
import uuid

import torch
from mmengine.evaluator import BaseMetric
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from mmaction_tdx.compat.safe_checkpoint import load_checkpoint_file
from mmaction_tdx.engine.hooks import SafeCheckpointHook

EPOCHS = 2
FILE_OPERATIONS = ('replace', 'remove', 'unlink')


class Tiny(BaseModel):
    """A linear classifier with ~100 kB of weights (so that a checkpoint
    with AdamW's two moments is ~300 kB, a best one ~100 kB)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 96)

    def forward(self, inputs, label, mode='tensor'):
        logits = self.fc(inputs)
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(logits, label))
        return [dict(pred=p) for p in logits.argmax(-1)]


class RisingMetric(BaseMetric):
    """A new best at every validation (as early in training)."""

    calls = 0

    def process(self, data_batch, data_samples):
        self.results.append(len(data_samples))

    def compute_metrics(self, results):
        RisingMetric.calls += 1
        return dict(acc=float(RisingMetric.calls))


def loader():
    generator = torch.Generator().manual_seed(0)
    data = [
        dict(inputs=torch.randn(256, generator=generator), label=i % 96)
        for i in range(4)
    ]
    return torch.utils.data.DataLoader(data, batch_size=2)


def train(work_dir: str,
          hook_type,
          extra_hooks=(),
          max_epochs: int = EPOCHS,
          resume_from=None) -> None:
    torch.manual_seed(0)
    runner = Runner(
        model=Tiny(),
        work_dir=work_dir,
        train_dataloader=loader(),
        val_dataloader=loader(),
        val_evaluator=[RisingMetric()],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        default_hooks=dict(
            checkpoint=hook_type(
                interval=1, max_keep_ckpts=1, save_best='auto'),
            logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=list(extra_hooks),
        visualizer=dict(type='Visualizer', vis_backends=[]),
        log_level='WARNING' if resume_from else 'ERROR',
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope=None,
        # One logger per run (MMEngine keeps them by this name).
        experiment_name=f'interrupted_{uuid.uuid4().hex}')
    runner.train()


def resumable(work_dir: str) -> dict:
    """What ``--resume`` finds in ``work_dir``."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(pointer):
        names = sorted(n for n in os.listdir(work_dir) if n.endswith('.pth'))
        return dict(last=None, checkpoints=names)
    with open(pointer) as f:
        last = f.read().strip()
    state = dict(last=osp.basename(last))
    try:
        checkpoint = load_checkpoint_file(last, 'cpu')
        state.update(
            loads=True,
            epoch=checkpoint['meta']['epoch'],
            optimizer=bool(checkpoint.get('optimizer', {}).get('state')))
    except Exception as err:  # reported to the test
        state.update(loads=False, error=f'{type(err).__name__}: {err}')
    return state


def _writes(mode) -> bool:
    return any(flag in str(mode) for flag in 'wxa+')


class Counter:
    """Counts the points of the saves (just before each ``os.replace``,
    ``os.remove`` and ``os.unlink``, before and after each ``open`` for
    writing, which truncates a file written in place); sends SIGKILL at
    the k-th."""

    def __init__(self, kill_at=None):
        self.count, self.kill_at = 0, kill_at
        self.originals = {name: getattr(os, name) for name in FILE_OPERATIONS}
        self.originals['open'] = builtins.open
        for name in FILE_OPERATIONS:
            setattr(os, name, self._before(self.originals[name]))
        builtins.open = self._open

    def restore(self):
        builtins.open = self.originals.pop('open')
        for name, original in self.originals.items():
            setattr(os, name, original)

    def point(self):
        self.count += 1
        if self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def _before(self, original):

        def operation(*args, **kwargs):
            self.point()
            return original(*args, **kwargs)

        return operation

    def _open(self, file, mode='r', *args, **kwargs):
        if not _writes(mode):
            return self.originals['open'](file, mode, *args, **kwargs)
        self.point()
        opened = self.originals['open'](file, mode, *args, **kwargs)
        self.point()
        return opened


def in_child(run) -> int:
    """Run ``run()`` in a forked process; its wait status."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            run()
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 3
        sys.stderr.flush()
        os._exit(code)
    return os.waitpid(pid, 0)[1]


def kill_mode(root: str, hook_type) -> list:
    # In this process, so that the forks find the first-run work
    # (imports, environment probes) done: one run, then one that counts.
    train(osp.join(root, 'warm_up'), hook_type)
    counter = Counter()
    try:
        train(osp.join(root, 'count_run'), hook_type)
    finally:
        counter.restore()
    total = counter.count
    results = []
    for k in range(1, total + 1):
        work_dir = osp.join(root, f'kill_{k}')

        def killed(work_dir=work_dir, k=k):
            Counter(kill_at=k)
            train(work_dir, hook_type)

        status = in_child(killed)
        result = resumable(work_dir)
        result.update(point=k, killed=os.WIFSIGNALED(status)
                      and os.WTERMSIG(status) == signal.SIGKILL)
        results.append(result)
        shutil.rmtree(work_dir)
    return results


class FillDisk(Hook):
    """When the second epoch's first checkpoint is about to be written
    (CheckpointHook has already removed what it removes first), another
    writer fills the disk, leaving ``spare_pages`` free."""

    def __init__(self, spare_pages: int):
        self.spare_pages, self.done = spare_pages, False

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['epoch'] != 2 or self.done:
            return
        self.done = True
        stat = os.statvfs(runner.work_dir)
        free = stat.f_bavail * stat.f_frsize
        size = max(free - self.spare_pages * stat.f_frsize, 0)
        with open(osp.join(runner.work_dir, 'filler'), 'wb') as f:
            f.write(bytes(size))


def disk_mode(root: str, hook_type) -> list:
    results = []
    # 4 kB pages: a checkpoint is ~75, a best one ~25.
    for spare_pages in (0, 40, 74, 75, 76, 77, 100):
        work_dir = osp.join(root, 'run')
        err_file = osp.join(osp.dirname(root), 'disk_error')

        def full(work_dir=work_dir):
            try:
                train(work_dir, hook_type, [FillDisk(spare_pages)])
            except OSError as err:
                with open(err_file, 'w') as f:
                    f.write(str(err))
                raise

        status = in_child(full)
        result = resumable(work_dir)
        result.update(spare_pages=spare_pages,
                      failed=os.WEXITSTATUS(status) != 0)
        if osp.exists(err_file):
            with open(err_file) as f:
                result['error'] = f.read()
            os.remove(err_file)
        results.append(result)
        shutil.rmtree(work_dir)
    return results


def resume_mode(root: str, hook_type) -> dict:
    """Resume from checkpoints whose message hub names a file outside the
    new run's directory as its best checkpoint: a crafted one naming any
    file, and a copy of a colleague's ``epoch_N.pth`` (naming their best).
    Every validation of the resumed runs is a new best."""
    colleague = osp.join(root, 'colleague')
    train(colleague, hook_type)
    victim = osp.join(root, 'precious.pth')
    with open(victim, 'w') as f:
        f.write('not yours')
    checkpoint = torch.load(
        osp.join(colleague, f'epoch_{EPOCHS}.pth'), weights_only=False)
    colleague_best = checkpoint['message_hub']['runtime_info']['best_ckpt']
    checkpoint['message_hub']['runtime_info']['best_ckpt'] = victim
    checkpoint['message_hub']['runtime_info']['keep_ckpt_ids'] = [
        '/../x', EPOCHS
    ]
    crafted = osp.join(root, 'crafted.pth')
    torch.save(checkpoint, crafted)
    logs = []
    for name, source in (('crafted', crafted),
                         ('copy', osp.join(colleague,
                                           f'epoch_{EPOCHS}.pth'))):
        work_dir = osp.join(root, name)
        train(work_dir, hook_type, max_epochs=EPOCHS + 1,
              resume_from=source)
        for log in glob.glob(osp.join(work_dir, '*', '*.log')):
            with open(log) as f:
                logs.append(f.read())
    return dict(
        victim=osp.exists(victim),
        colleague_best=osp.exists(colleague_best),
        log='\n'.join(logs))


if __name__ == '__main__':
    root, hook_name = sys.argv[1:3]
    disk_root = sys.argv[3] if len(sys.argv) > 3 else None
    hook_type = dict(
        safe=SafeCheckpointHook, mmengine=CheckpointHook)[hook_name]
    torch.set_num_threads(1)
    results = dict(
        kill=kill_mode(root, hook_type),
        resume=resume_mode(root, hook_type))
    if disk_root:
        results['disk'] = disk_mode(disk_root, hook_type)
    print(json.dumps(results))
