# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""ScheduleCheckHook: a schedule that does not fit ``max_epochs`` stops the
run before its first iteration, naming the values to set; the quick-start
schedule, written relative to ``max_epochs``, ends at ``eta_min``."""
# mmaction_tdx first: its compat fixes make `mmaction.datasets` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import copy
import math
import uuid

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO_ROOT
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR, MultiStepLR
from mmengine.runner import Runner
from torch import nn

from mmaction_tdx.engine.hooks import ScheduleMismatchError
from mmaction_tdx.engine.hooks.schedule_check_hook import check_schedule

SCHEDULE = f'{REPO_ROOT}/configs/_base_/schedules/quickstart_cpu.py'


class CountingModel(BaseModel):
    """A linear model that counts its training steps."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.steps = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.steps += mode == 'loss'
        x = torch.stack(inputs)
        return dict(loss=F.cross_entropy(self.fc(x), torch.zeros(
            len(inputs), dtype=torch.long)))


def run(tmp_path, param_scheduler, max_epochs, hooks=None, custom=None):
    """Train CountingModel on 4 samples (2 iterations per epoch)."""
    model = CountingModel()
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        experiment_name=f'schedule-{uuid.uuid4().hex[:8]}',
        default_scope='mmaction',
        train_dataloader=dict(
            dataset=[dict(inputs=torch.randn(2)) for _ in range(4)],
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate'),
            batch_size=2),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        param_scheduler=copy.deepcopy(param_scheduler),
        custom_hooks=custom,
        default_hooks=dict(
            checkpoint=None,
            **(hooks or dict(schedule_check=dict(type='ScheduleCheckHook')))),
        log_level='WARNING',
        # as Runner.from_cfg passes it: the hook reads the config to state
        # converted schedulers in epochs, as they are written
        cfg=Config(dict(param_scheduler=copy.deepcopy(param_scheduler))))
    runner.train()
    return runner, model


def quickstart_schedule():
    return Config.fromfile(SCHEDULE).param_scheduler


def _two_schedulers(max_epochs):
    """The quick-start schedule as MMEngine's two schedulers, written
    for ``max_epochs`` (as it was before WarmupCosineLR)."""
    return [
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
             end=1, convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=1e-5,
             by_epoch=True, begin=1, end=max_epochs,
             convert_to_iter_based=True)
    ]


def _lr_per_iteration(tmp_path, schedule, max_epochs):
    lrs = []

    class Record(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            lrs.append(runner.optim_wrapper.get_lr()['lr'][0])

    run(tmp_path, schedule, max_epochs, custom=[Record()])
    return lrs


@pytest.mark.parametrize('max_epochs', [1, 3])
def test_quickstart_schedule_is_warm_up_then_cosine_to_the_end(
        tmp_path, max_epochs):
    """One WarmupCosineLR equals MMEngine's LinearLR + CosineAnnealingLR
    written for the run's length, whatever max_epochs is (1: warm-up
    only, where the two-scheduler form cannot be built)."""
    ours = _lr_per_iteration(tmp_path, quickstart_schedule(), max_epochs)
    assert len(ours) == 2 * max_epochs
    if max_epochs == 1:
        expected = [0.1 * 0.1, 0.1]  # LinearLR over 2 iterations
    else:
        expected = _lr_per_iteration(tmp_path, _two_schedulers(max_epochs),
                                     max_epochs)
    assert ours == pytest.approx(expected, rel=1e-9)
    if max_epochs == 3:
        # the cosine ends with training: the last iteration's lr is one
        # step before eta_min, eta_min + (lr - eta_min)(1 + cos(3pi/4))/2
        assert ours[-1] == pytest.approx(
            1e-5 + (0.1 - 1e-5) * (1 + math.cos(3 * math.pi / 4)) / 2)


def test_explicit_schedule_left_behind_stops_before_training(tmp_path):
    schedule = _two_schedulers(12)  # written for 12 epochs
    model = None
    with pytest.raises(ScheduleMismatchError) as error:
        _, model = run(tmp_path, schedule, max_epochs=2)
    text = str(error.value)
    assert 'param_scheduler[1] (CosineAnnealingLR, lr) ends at epoch 12' \
        in text
    assert 'param_scheduler.1.end=2 param_scheduler.1.T_max=1' in text
    assert model is None  # raised inside train(): no step was taken
    # shortened on purpose (a smoke test): a warning, and it trains
    _, model = run(tmp_path, schedule, max_epochs=2, hooks=dict(
        schedule_check=dict(type='ScheduleCheckHook', cut_off='warn')))
    assert model.steps == 4


def test_matching_explicit_schedule_passes(tmp_path):
    _, model = run(tmp_path, _two_schedulers(3), max_epochs=3)
    assert model.steps == 6


def _optimizer():
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)


def test_cosine_t_max_and_late_milestones_are_errors():
    opt = _optimizer()
    errors, _ = check_schedule(
        [CosineAnnealingLR(opt, T_max=20, begin=0, end=10)],
        dict(epoch=10, iter=100))
    assert len(errors) == 1 and 'param_scheduler.0.T_max=10' in errors[0]
    errors, _ = check_schedule(
        [MultiStepLR(_optimizer(), milestones=[5, 12], begin=0, end=10)],
        dict(epoch=10, iter=100))
    assert len(errors) == 1 and 'milestones [12]' in errors[0]
    errors, early = check_schedule(
        [MultiStepLR(_optimizer(), milestones=[5, 8], begin=0, end=10)],
        dict(epoch=10, iter=100))
    assert errors == [] and early == []


def test_decay_ending_early_is_reported_warm_up_is_not():
    opt = _optimizer()
    warm_up = LinearLR(opt, start_factor=0.1, begin=0, end=1)
    errors, early = check_schedule([warm_up], dict(epoch=20, iter=200))
    assert errors == [] and early == []
    cosine = CosineAnnealingLR(opt, T_max=11, begin=1, end=12)
    errors, early = check_schedule([warm_up, cosine],
                                   dict(epoch=20, iter=200))
    assert errors == []
    assert len(early) == 1 and 'the last 8 epochs' in early[0]
    assert 'param_scheduler.1.end=20' in early[0]
    assert 'param_scheduler.1.T_max=19' in early[0]


def test_early_end_can_be_an_error(tmp_path):
    from mmaction.registry import HOOKS
    with pytest.raises(ValueError, match="'warn' or 'error'"):
        HOOKS.build(dict(type='ScheduleCheckHook', early_end='never'))
    schedule = _two_schedulers(2)  # ends at epoch 2 of 3
    runner_cfg = dict(schedule_check=dict(type='ScheduleCheckHook',
                                          early_end='error'))
    with pytest.raises(ScheduleMismatchError, match='the last 1 epochs'):
        run(tmp_path, schedule, max_epochs=3, hooks=runner_cfg)
