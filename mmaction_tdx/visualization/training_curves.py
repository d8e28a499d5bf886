# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Read MMEngine's json training logs and plot their curves.

MMEngine (``vis_backends=[dict(type='LocalVisBackend')]``, MMAction2's
default) writes ``WORK_DIR/TIMESTAMP/vis_data/TIMESTAMP.json`` and
``scalars.json``, one json object a line:

* training: ``{"lr": ..., "loss": ..., "loss_cls": ..., "loss_td": ...,
  "time": ..., "epoch": 1, "iter": 5, "step": 5}`` (``iter``: counted over
  the whole run);
* validation: ``{"acc/top1": ..., "time": ..., "step": 1}`` (no
  ``epoch``; ``step`` is the epoch).

MMAction2 1.2.0's ``tools/analysis_tools/analyze_logs.py`` expects the
0.x log format (per-epoch ``iter``, a ``mode`` field) and imports seaborn,
so it fails on these logs; :func:`load_log` and :func:`plot_curves` serve
``tools/analysis/analyze_logs.py`` instead.
"""
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np


@dataclass
class TrainingLog:
    """Curves of one log: ``train[key] = (iters, values)`` and
    ``val[key] = (epochs, values)``; ``epochs[i]`` is the epoch of the
    ``i``-th training record."""
    path: str
    train: Dict[str, tuple] = field(default_factory=dict)
    val: Dict[str, tuple] = field(default_factory=dict)
    epochs: List[int] = field(default_factory=list)

    def curve(self, key: str) -> tuple:
        """``(x, y, x_label)`` of ``key``: per iteration for training
        values, per epoch for validation values."""
        if key in self.train:
            return (*self.train[key], 'iter')
        if key in self.val:
            return (*self.val[key], 'epoch')
        raise KeyError(
            f'{self.path} has no {key!r}; it has training keys '
            f'{sorted(self.train)} and validation keys {sorted(self.val)}.')


def load_log(path: str) -> TrainingLog:
    """Parse an MMEngine json log (see the module docstring)."""
    train, val = defaultdict(lambda: ([], [])), defaultdict(lambda: ([], []))
    epochs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}:{number} is not json: {err}.')
            if 'iter' in record:  # a training record
                target, x = train, record['iter']
                epochs.append(record.get('epoch', 0))
            elif 'step' in record:  # validation: step = epoch
                target, x = val, record['step']
            else:
                continue
            for key, value in record.items():
                if key in ('epoch', 'iter', 'step') or not isinstance(
                        value, (int, float)):
                    continue
                target[key][0].append(x)
                target[key][1].append(value)
    log = TrainingLog(path=path, epochs=epochs)
    log.train = {k: (np.asarray(x), np.asarray(y)) for k, (x, y) in
                 train.items()}
    log.val = {k: (np.asarray(x), np.asarray(y)) for k, (x, y) in val.items()}
    if not log.train and not log.val:
        raise ValueError(f'{path} holds no MMEngine training or validation '
                         'records (is it vis_data/*.json of a run?).')
    return log


def plot_curves(logs: Sequence[TrainingLog],
                keys: Sequence[str],
                out: str,
                legend: Optional[Sequence[str]] = None,
                title: Optional[str] = None,
                style: Optional[str] = None) -> str:
    """One panel per key (so a ``loss_td`` of order 1e-3 is not flattened
    beside a ``loss_cls`` of order 1), one curve per log; save as ``out``.

    Args:
        logs: Parsed logs.
        keys: e.g. ``['loss_cls', 'loss_td']``.
        out (str): Image path (PNG, PDF, ... by its extension).
        legend: One name per log (default: the log paths).
        title: Title of the figure.
        style: A matplotlib style name (``plt.style.available``).

    Returns:
        str: ``out``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if legend is not None and len(legend) != len(logs):
        raise ValueError(f'--legend needs one name per log ({len(logs)}), '
                         f'got {len(legend)}.')
    names = list(legend) if legend is not None else [log.path for log in logs]
    for log in logs:  # every key of every log, before anything is drawn
        for key in keys:
            log.curve(key)
    with plt.style.context(style or 'default'):
        fig, axes = plt.subplots(
            len(keys), 1, figsize=(7, 2.4 * len(keys)), squeeze=False)
        for ax, key in zip(axes[:, 0], keys):
            for log, name in zip(logs, names):
                x, y, x_label = log.curve(key)
                ax.plot(x, y, label=name, linewidth=1, marker='.',
                        markersize=3)
            ax.set_ylabel(key)
            ax.set_xlabel(x_label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(out, dpi=100)
        plt.close(fig)
    return out


def train_time_summary(log: TrainingLog,
                       include_outliers: bool = False) -> Dict[str, float]:
    """Per-epoch mean iteration time (``time`` of the training records).

    The first record of each epoch includes the data loader start-up and
    is left out unless ``include_outliers``.

    Returns:
        dict: ``slowest_epoch``, ``slowest_time``, ``fastest_epoch``,
        ``fastest_time``, ``std_over_epochs``, ``mean_iter_time``.
    """
    if 'time' not in log.train:
        raise KeyError(f'{log.path} has no training `time` records.')
    per_epoch = defaultdict(list)
    for epoch, value in zip(log.epochs, log.train['time'][1]):
        per_epoch[epoch].append(float(value))
    means = {}
    for epoch, times in sorted(per_epoch.items()):
        kept = times if include_outliers or len(times) < 2 else times[1:]
        means[epoch] = float(np.mean(kept))
    values = np.array(list(means.values()))
    slowest = max(means, key=means.get)
    fastest = min(means, key=means.get)
    all_times = [t for times in per_epoch.values() for t in (
        times if include_outliers or len(times) < 2 else times[1:])]
    return dict(
        slowest_epoch=slowest,
        slowest_time=means[slowest],
        fastest_epoch=fastest,
        fastest_time=means[fastest],
        std_over_epochs=float(values.std()),
        mean_iter_time=float(np.mean(all_times)))
