# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Training progress of a ``tools/train.py`` run, for
``tools/run_quickstart.py``: the runner's own state, sent down a pipe, so
that the quick start reads no log text.

``run_quickstart.py`` opens a pipe and adds :class:`EpochProgressHook` to
the run with ``--cfg-options
default_hooks.progress.type=_quickstart_progress.EpochProgressHook
default_hooks.progress.fd=N`` (N: the pipe's write end, which the child
inherits). MMEngine builds a ``type`` written as ``module.Class`` by
importing the module, and ``tools/train.py`` has ``tools/`` on
``sys.path``; no registry entry is needed. A default hook, not a custom
one: ``default_hooks`` is a dict, so the option adds the hook without
replacing the config's own.
"""
import json
import os
import time

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

#: The ``type`` of :class:`EpochProgressHook` in a config.
HOOK_TYPE = f'{__name__}.EpochProgressHook'
#: What the runner's ``train_step`` outputs are averaged for.
AVERAGED = ('loss', 'top1_acc')


class EpochProgressHook(Hook):
    """Writes one JSON line per finished training epoch to file descriptor
    ``fd``::

        {"epoch": 1, "max_epochs": 12, "iter": 25, "max_iters": 300,
         "loss": 2.01, "top1_acc": 0.3, "train_s": 12.5, "eta_s": 137.5}

    ``epoch`` counts from 1; ``iter`` is the iterations done. ``loss`` and
    ``top1_acc`` are the means of ``train_step``'s outputs over all the
    epoch's iterations (None where the model reports none). ``train_s`` is
    the time since training started (this run), ``eta_s`` the iterations
    left at this run's mean time per iteration (epoch ends included).

    Only the main process writes. Each line is one ``os.write`` (atomic on
    a pipe); if the reader has gone, training goes on without reports.

    Args:
        fd (int): A writable file descriptor, e.g. a pipe's write end.
    """

    priority = 'VERY_LOW'  # after the checkpoint: it is part of the epoch

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._began = time.perf_counter()
        self._first_iter = 0
        self._sums, self._counts = {}, {}

    def before_train(self, runner) -> None:
        self._began = time.perf_counter()
        self._first_iter = runner.iter  # not 0 when resumed

    def before_train_epoch(self, runner) -> None:
        self._sums, self._counts = {}, {}

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        for key in AVERAGED:
            value = (outputs or {}).get(key)
            if value is not None:
                self._sums[key] = self._sums.get(key, 0.0) + float(value)
                self._counts[key] = self._counts.get(key, 0) + 1

    def after_train_epoch(self, runner) -> None:
        if self.fd is None or not is_main_process():
            return
        train_s = time.perf_counter() - self._began
        done = runner.iter - self._first_iter
        message = dict(
            epoch=runner.epoch + 1,  # the loop counts it after the hooks
            max_epochs=runner.max_epochs,
            iter=runner.iter,
            max_iters=runner.max_iters,
            **{
                key: (self._sums[key] / self._counts[key]
                      if self._counts.get(key) else None)
                for key in AVERAGED
            },
            train_s=train_s,
            eta_s=(train_s / done * (runner.max_iters - runner.iter)
                   if done > 0 else None))
        try:
            os.write(self.fd, (json.dumps(message) + '\n').encode())
        except BrokenPipeError:
            self.fd = None
