# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Stop a run whose parameter schedule does not fit its length.

``--cfg-options train_cfg.max_epochs=N`` changes the loop's length, not the
schedulers: a cosine written to end at epoch 12 (``end=12``, ``T_max=11``)
in a 2-epoch run leaves the lr near its peak when training stops, and in a
20-epoch run trains 8 epochs at ``eta_min``. Nothing in MMEngine says so.

Schedules written *relative* to the loop avoid this: MMEngine 0.10 sets an
unset ``end`` to ``train_cfg.max_epochs`` (``max_iters`` for
``by_epoch=False``) and ``CosineAnnealingLR`` takes an unset ``T_max`` as
``end - begin``; the quick-start schedule
(``configs/_base_/schedules/quickstart_cpu.py``) is written so. For
schedules with explicit numbers this hook compares, before the first
iteration, every built scheduler with the training length
:math:`L` (epochs, or iterations for iteration-based / converted
schedulers) and

* **raises** :class:`ScheduleMismatchError` when the schedule is cut off:
  ``end > L`` (finite ``end``), a ``CosineAnnealingLR`` whose ``T_max``
  differs from ``min(end, L) - begin`` (the lr would not reach
  ``eta_min`` at the end), or a ``MultiStepLR`` milestone at or after
  ``L`` (the decay never happens); the message names ``param_scheduler``
  and the values to set;
* **warns** (or raises, with ``early_end='error'``) when the last
  scheduler of a parameter is a decay that ends before ``L``: the
  remaining epochs then train at the decay's final value, which is
  legitimate for some recipes (a constant tail) but rarely what an
  edited ``max_epochs`` intends. Warm-ups that end at the base value
  (``LinearLR``/``ConstantLR`` with ``end_factor``/ending factor 1) are
  never reported.

Resumed runs are checked the same way (the schedule belongs to the config).
A run shortened on purpose (a smoke test) turns the error into a warning
with ``default_hooks.schedule_check.cut_off='warn'`` (MMEngine accepts
``None`` only for its own default hooks).
"""
import logging
from typing import Dict, List, Optional, Tuple

from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim.scheduler import (
    ConstantParamScheduler,
    CosineAnnealingParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
)
from mmengine.optim.scheduler.param_scheduler import INF
from mmengine.runner import IterBasedTrainLoop


class ScheduleMismatchError(ValueError):
    """The parameter schedule does not fit ``train_cfg``'s length."""


@HOOKS.register_module()
class ScheduleCheckHook(Hook):
    """Check ``param_scheduler`` against the training length (see module).

    Args:
        cut_off (str): what to do when training stops before the schedule
            does (``end``, ``T_max``, ``milestones``): ``'error'``
            (default) or ``'warn'`` (a run shortened on purpose).
        early_end (str): what to do when a parameter's last decay ends
            before training does: ``'warn'`` (default) or ``'error'``.
    """
    priority = 'VERY_HIGH'

    def __init__(self, cut_off: str = 'error',
                 early_end: str = 'warn') -> None:
        for name, value in (('cut_off', cut_off), ('early_end', early_end)):
            if value not in ('warn', 'error'):
                raise ValueError(
                    f"ScheduleCheckHook: {name}={value!r}; use 'warn' or "
                    "'error'.")
        self.cut_off = cut_off
        self.early_end = early_end

    def before_train(self, runner) -> None:
        schedulers = _flatten(runner.param_schedulers)
        if not schedulers:
            return
        loop = runner.train_loop
        # An iteration-based loop reports max_epochs=1: no epoch length.
        lengths = dict(
            epoch=None if isinstance(loop, IterBasedTrainLoop) else getattr(
                loop, 'max_epochs', None),
            iter=loop.max_iters)
        # Iterations per epoch, to state converted schedulers
        # (by_epoch=True, convert_to_iter_based=True) in epochs.
        # The config is read from runner.cfg (Runner.from_cfg, the tools);
        # without it, values are stated in the built units (iterations).
        scales = [1] * len(schedulers)
        configs = runner.cfg.get('param_scheduler')
        if isinstance(configs, dict):
            configs = [configs]
        if lengths['epoch'] and isinstance(configs, (list, tuple)) and \
                len(configs) == len(schedulers):
            epoch_length = max(loop.max_iters // lengths['epoch'], 1)
            scales = [
                epoch_length if isinstance(c, dict)
                and c.get('by_epoch', True)
                and c.get('convert_to_iter_based', False) else 1
                for c in configs
            ]
        errors, early = check_schedule(schedulers, lengths, scales)
        if errors:
            text = (
                'The parameter schedule does not fit the training length '
                f'(train_cfg.max_epochs={lengths["epoch"]}, '
                f'max_iters={lengths["iter"]}):\n  ' + '\n  '.join(errors) +
                '\nOr write the schedule relative to training: leave `end` '
                '(and CosineAnnealingLR\'s `T_max`) unset, and MMEngine '
                'takes them from train_cfg. For a run shortened on purpose '
                '(a smoke test), make this a warning: --cfg-options '
                'default_hooks.schedule_check.cut_off=warn')
            if self.cut_off == 'error':
                raise ScheduleMismatchError(text)
            print_log(text, logger='current', level=logging.WARNING)
        for text in early:
            if self.early_end == 'error':
                raise ScheduleMismatchError(text)
            print_log(text, logger='current', level=logging.WARNING)


def _flatten(schedulers) -> List:
    if schedulers is None:
        return []
    if isinstance(schedulers, dict):  # one list per optimizer
        return [s for group in schedulers.values() for s in _flatten(group)]
    return list(schedulers)


def check_schedule(schedulers, lengths: Dict[str, Optional[int]],
                   scales: Optional[List[int]] = None):
    """Compare built schedulers with the training length.

    Args:
        schedulers (list): built MMEngine parameter schedulers, in
            ``param_scheduler`` order.
        lengths (dict): ``{'epoch': max_epochs or None, 'iter':
            max_iters}``.
        scales (list[int], optional): per scheduler, the steps per
            config unit (iterations per epoch for a scheduler written in
            epochs and converted to iterations; else 1), so that messages
            state the values as the config writes them.

    Returns:
        tuple[list[str], list[str]]: the errors and the early-end notes,
        each naming ``param_scheduler[i]`` and the values to set.
    """
    errors, early = [], []
    scales = scales or [1] * len(schedulers)
    last: Dict[str, Tuple[int, object]] = {}
    for index, s in enumerate(schedulers):
        length = lengths['epoch' if s.by_epoch else 'iter']
        if length is None:
            continue
        scale = scales[index]
        unit = 'epoch' if s.by_epoch or scale > 1 else 'iter'
        name = f'param_scheduler[{index}] ({type(s).__name__}, ' \
               f'{s.param_name})'
        key = 'param_scheduler.{}.{}'.format(index, '{}')

        def shown(value):
            return value / scale if scale > 1 else value

        end = min(s.end, length)
        if s.end != INF and s.end > length:
            fix = [f'{key.format("end")}={shown(length):g}']
            if isinstance(s, CosineAnnealingParamScheduler):
                fix.append(f'{key.format("T_max")}='
                           f'{shown(length - s.begin):g}')
            errors.append(
                f'{name} ends at {unit} {shown(s.end):g} but training stops '
                f'at {shown(length):g}: the rest of the schedule never runs. '
                f'Set {" ".join(fix)} (--cfg-options).')
        elif isinstance(s, CosineAnnealingParamScheduler) and \
                s.T_max != end - s.begin:
            errors.append(
                f'{name} has T_max={shown(s.T_max):g} but runs '
                f'{shown(end - s.begin):g} {unit}s (begin {shown(s.begin):g}'
                f', end {shown(end):g}): the value does not reach eta_min '
                f'at its end. Set {key.format("T_max")}='
                f'{shown(end - s.begin):g}.')
        if isinstance(s, MultiStepParamScheduler):
            late = sorted(m for m in s.milestones if s.begin + m >= end)
            if late:
                errors.append(
                    f'{name} has milestones {[shown(m) for m in late]} '
                    f'(counted from begin {shown(s.begin):g}) at or after '
                    f'the end of training ({shown(end):g}): those decays '
                    'never happen. Set param_scheduler.'
                    f'{index}.milestones to steps before {shown(end):g}.')
        if s.end != INF and (s.param_name not in last
                             or s.end >= last[s.param_name][1].end):
            last[s.param_name] = (index, s)
    for param, (index, s) in last.items():
        length = lengths['epoch' if s.by_epoch else 'iter']
        if length is None or s.end >= length or _ends_at_base(s):
            continue
        scale = scales[index]
        unit = 'epoch' if s.by_epoch or scale > 1 else 'iter'
        early.append(
            f'param_scheduler[{index}] ({type(s).__name__}, {param}) ends at '
            f'{unit} {s.end / scale:g} and nothing follows it, but '
            f'training runs to {length / scale:g}: the last '
            f'{(length - s.end) / scale:g} {unit}s train at its final '
            f'{param}. If the schedule should span the run, set '
            f'param_scheduler.{index}.end={length / scale:g}' +
            (f' and param_scheduler.{index}.T_max='
             f'{(length - s.begin) / scale:g}'
             if isinstance(s, CosineAnnealingParamScheduler) else '') +
            ' (or leave them unset).')
    return errors, early


def _ends_at_base(scheduler) -> bool:
    """Warm-ups that leave the parameter at its base value."""
    if isinstance(scheduler, LinearParamScheduler):
        return scheduler.end_factor == 1.0
    return isinstance(scheduler, ConstantParamScheduler)
