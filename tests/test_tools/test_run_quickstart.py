# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""``make demo``'s job: its table's statistics (checked on hand-made
predictions) and the whole job on a tiny dataset and one epoch."""
import os.path as osp
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import REPO_ROOT, load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/run_quickstart.py')


def test_summary_reads_the_configs_evaluator(tool):
    """The table's figures are the quick-start test_evaluator's metrics
    (AccMetric + DirectionAccuracy), as runner.test() returns them."""
    import torch
    from mmaction.registry import METRICS
    from mmengine.config import Config
    from mmengine.evaluator import Evaluator
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'quickstart',
        'tsn_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py'))
    evaluator = Evaluator([METRICS.build(m) for m in cfg.test_evaluator])
    # labels 0/1 = right/left, 2/3 = down/up; one hot scores
    labels = [0, 1, 2, 3, 0, 1]
    preds = [0, 0, 2, 2, 4, 1]  # right, wrong dir, right, wrong, wrong pair
    evaluator.process([dict(pred_score=torch.eye(10)[p],
                            gt_label=torch.tensor([g]))
                       for p, g in zip(preds, labels)])
    summary = tool.summarise(dict(evaluator.evaluate(6), clips=6))
    assert summary['top1'] == pytest.approx(3 / 6)
    assert summary['pair'] == pytest.approx(5 / 6)
    assert summary['direction'] == pytest.approx(3 / 5)
    assert summary['direction_n'] == 5
    # pair 0: clips 0, 1, 5 in the right pair, 0 and 5 right -> 2/3
    assert summary['per_pair'][0] == pytest.approx(2 / 3)
    assert summary['per_pair'][1] == pytest.approx(1 / 2)
    assert np.isnan(summary['per_pair'][2])
    assert summary['clips'] == 6


def test_wilson_interval(tool):
    # hand-computed: p = 0.5, n = 100 -> 0.5 +- 0.0963 (z = 1.96)
    low, high = tool.wilson(0.5, 100)
    assert low == pytest.approx(0.4038, abs=1e-3)
    assert high == pytest.approx(0.5962, abs=1e-3)


def test_conclusion_names_blind_and_temporal_models(tool):
    def row(model, direction, n=100):
        return dict(model=model, direction=direction,
                    runs=[dict(direction_n=n)])
    text = tool.conclusion([row('TSN', 0.52), row('TDN', 0.95)])
    assert text.startswith('Conclusion: TDN tells')
    assert 'TSN cannot' in text and 'same frames' in text


def test_quickstart_prints_progress_a_table_and_a_png(tmp_path):
    result = subprocess.run(
        [
            sys.executable, 'tools/run_quickstart.py', '--models', 'tsn',
            'tdrl', '--epochs', '1', '--train-per-class', '1',
            '--val-per-class', '1', '--data-root',
            str(tmp_path / 'data'), '--work-dir',
            str(tmp_path / 'work')
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[
        -2000:]
    lines = result.stdout.splitlines()
    # The progress lines come from the runner (EpochProgressHook), one per
    # model and epoch.
    for model in ('TSN', 'TDRL'):
        progress = [line for line in lines
                    if line.strip().startswith(f'{model} epoch 1/1: loss')]
        assert len(progress) == 1 and 'train acc' in progress[0] and \
            'ETA 0:00:00' in progress[0], lines
    header = next(i for i, line in enumerate(lines)
                  if line.startswith('model'))
    rows = [line.split() for line in lines[header + 2:header + 4]]
    assert [row[0] for row in rows] == ['TSN', 'TDRL']
    for row in rows:
        top1 = float(row[1].rstrip('%'))
        assert 0.0 <= top1 <= 100.0
    assert any(line.startswith('Conclusion: ') for line in lines)
    png = tmp_path / 'work' / 'quickstart_results.png'
    assert f'chart and training curves: {tmp_path / "work"}' in \
        result.stdout and png.stat().st_size > 0
    assert 'quick start finished: 2 models' in result.stdout


def test_progress_line_averages_the_epochs_iterations(
        tool, capsys, monkeypatch):
    """The runner's hook sends each finished epoch down the pipe; the tool
    prints it: means over all the epoch's iterations, MMEngine-style
    ETA."""
    import torch
    hook_module = load_tool('tools/_quickstart_progress.py')
    progress = tool.EpochProgress('TSM', runs_left=2)
    hook = hook_module.EpochProgressHook(
        progress.cfg_options['default_hooks.progress.fd'])
    clock = iter([100.0, 110.0])
    monkeypatch.setattr(hook_module.time, 'perf_counter',
                        lambda: next(clock))
    runner = types.SimpleNamespace(epoch=0, max_epochs=3, iter=0,
                                   max_iters=6)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    for loss, acc in ((2.2, 0.25), (1.8, 0.35)):
        hook.after_train_iter(runner, runner.iter, outputs=dict(
            loss=torch.tensor(loss), top1_acc=torch.tensor(acc),
            loss_cls=torch.tensor(9.0)))
        runner.iter += 1
    hook.after_train_epoch(runner)
    assert capsys.readouterr().out == ''  # shown by follow(), in run()
    progress.follow()
    line = capsys.readouterr().out
    assert line.startswith('    TSM epoch 1/3: loss 2.000, train acc 30%,')
    # 10 s for 2 iterations, 4 left
    assert line.endswith(' s, ETA 0:00:20 (+2 more run(s))\n'), line
    progress.close()  # nothing left open
    assert progress.pass_fds == ()


def test_progress_hook_joins_the_configs_hooks(tool, monkeypatch):
    """The options add the hook beside the config's default hooks, and
    MMEngine builds its ``module.Class`` type from tools/ (on the training
    process's sys.path, as tools/train.py puts it)."""
    from mmaction.registry import HOOKS
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'quickstart',
        'tsn_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py'))
    kept = set(cfg.default_hooks)
    progress = tool.EpochProgress('TSN', runs_left=0)
    try:
        cfg.merge_from_dict(progress.cfg_options)
        assert set(cfg.default_hooks) == kept | {'progress'}
        monkeypatch.syspath_prepend(osp.join(REPO_ROOT, 'tools'))
        hook = HOOKS.build(cfg.default_hooks.progress)
        assert type(hook).__name__ == 'EpochProgressHook'
        assert hook.fd in progress.pass_fds and hook.priority == 'VERY_LOW'
    finally:
        progress.close()


def test_epochs_option_sets_the_length_the_schedule_follows(tool):
    from mmengine.config import Config
    config = osp.join(REPO_ROOT, 'configs', 'quickstart',
                      'tdrl_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py')
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(tool.config_overrides('data/x', 5))
    assert cfg.train_cfg.max_epochs == 5 and cfg.train_cfg.val_interval == 5
    assert cfg.test_dataloader.dataset.ann_file == 'data/x/val_list.txt'
    # warm-up epoch, then cosine: written relative to training (MMEngine
    # ends it at max_epochs; tests/test_engine/test_schedule_check_hook.py
    # runs it), so nothing else needs overriding
    (schedule, ) = cfg.param_scheduler
    assert (schedule.type, schedule.warmup) == ('WarmupCosineLR', 1)
    assert 'end' not in schedule
    assert tool.parse_args(['--epochs', '1']).epochs == 1
