# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Training curves from MMEngine json logs: loss_cls and loss_td of TDRL
(``tools/analysis/analyze_logs.py``, MMAction2's command line)."""
import json

import numpy as np
import pytest
from vis_helpers import assert_nontrivial_png, run_tool

from mmaction_tdx.visualization import load_log, train_time_summary

TOOL = 'tools/analysis/analyze_logs.py'


def write_mmengine_log(path, epochs=3, iters_per_epoch=4, interval=5,
                       with_td=True):
    """A ``vis_data/*.json`` log as MMEngine 0.10 writes it for a TDRL run:
    training records every ``interval`` iterations (``iter`` counted over
    the run), one validation record per epoch (``step`` = epoch)."""
    lines, step = [], 0
    for epoch in range(1, epochs + 1):
        for k in range(iters_per_epoch):
            step += interval
            record = dict(lr=0.01, data_time=0.01, grad_norm=4.2,
                          loss=0.0, top1_acc=0.5, top5_acc=1.0,
                          loss_cls=2.3 * np.exp(-step / 30) + 0.1,
                          time=0.9 if k == 0 else 0.5,
                          epoch=epoch, iter=step, memory=812, step=step)
            if with_td:
                record['loss_td'] = 0.03 * np.exp(-step / 50)
            record['loss'] = record['loss_cls'] + record.get('loss_td', 0)
            lines.append(json.dumps(record))
        lines.append(json.dumps({'acc/top1': 0.25 * epoch, 'acc/top5': 0.9,
                                 'acc/mean1': 0.25 * epoch,
                                 'data_time': 0.01, 'time': 0.02,
                                 'step': epoch}))
    path.write_text('\n'.join(lines) + '\n')
    return path


def test_load_log_separates_training_and_validation(tmp_path):
    log = load_log(str(write_mmengine_log(tmp_path / 'a.json')))
    iters, loss_td = log.train['loss_td']
    assert iters.tolist() == list(range(5, 65, 5))
    assert loss_td[0] == pytest.approx(0.03 * np.exp(-5 / 50))
    epochs, top1 = log.val['acc/top1']
    assert epochs.tolist() == [1, 2, 3] and top1.tolist() == [.25, .5, .75]
    assert log.curve('acc/top1')[2] == 'epoch'
    with pytest.raises(KeyError, match="no 'loss_xyz'.*loss_td"):
        log.curve('loss_xyz')


def test_train_time_leaves_out_each_epochs_first_record(tmp_path):
    log = load_log(str(write_mmengine_log(tmp_path / 'a.json')))
    summary = train_time_summary(log)
    assert summary['mean_iter_time'] == pytest.approx(0.5)
    assert train_time_summary(log, include_outliers=True)[
        'mean_iter_time'] == pytest.approx(0.6)


def test_plot_curve_writes_loss_cls_and_loss_td(tmp_path, capsys):
    tdrl = write_mmengine_log(tmp_path / 'tdrl.json')
    tsm = write_mmengine_log(tmp_path / 'tsm.json', with_td=False)
    out = tmp_path / 'losses.png'
    assert run_tool(TOOL, 'plot_curve', tdrl, '--keys', 'loss_cls',
                    'loss_td', '--legend', 'tdrl', '--out', out) == 0
    assert f'save curve to: {out}' in capsys.readouterr().out
    assert_nontrivial_png(out, min_size=(400, 600))
    both = tmp_path / 'top1.png'
    assert run_tool(TOOL, 'plot_curve', tdrl, tsm, '--keys', 'acc/top1',
                    '--legend', 'tdrl', 'tsm', '--title', 'top-1',
                    '--out', both) == 0
    assert both.is_file()
    # tsm has no loss_td: said, and nothing is written
    assert run_tool(TOOL, 'plot_curve', tsm, '--keys', 'loss_td', '--out',
                    tmp_path / 'none.png') == 1
    assert "no 'loss_td'" in capsys.readouterr().err
    assert not (tmp_path / 'none.png').exists()


def test_cal_train_time(tmp_path, capsys):
    log = write_mmengine_log(tmp_path / 'a.json')
    assert run_tool(TOOL, 'cal_train_time', log) == 0
    assert 'average iter time: 0.5000 s/iter' in capsys.readouterr().out


def test_a_text_log_is_refused(tmp_path, capsys):
    text = tmp_path / 'run.log'
    text.write_text('2024/01/01 00:00:00 - mmengine - INFO - Epoch(train)\n')
    assert run_tool(TOOL, 'plot_curve', text, '--out',
                    tmp_path / 'x.png') == 1
    assert 'is not json' in capsys.readouterr().err


def write_run_part(work_dir, timestamp, epochs, top1, loss, last_iters=4):
    """``WORK_DIR/TIMESTAMP/vis_data/scalars.json`` of one part of a run:
    4 training records an epoch (``iter`` counted over the whole run),
    ``last_iters`` of them in the last epoch (an interrupted part), and a
    validation record after every complete epoch."""
    vis = work_dir / timestamp / 'vis_data'
    vis.mkdir(parents=True)
    lines = []
    for epoch in epochs:
        iters = last_iters if epoch == epochs[-1] else 4
        for k in range(iters):
            lines.append(json.dumps(dict(
                loss=loss, lr=0.01, time=0.5, epoch=epoch,
                iter=(epoch - 1) * 4 + k + 1, step=(epoch - 1) * 4 + k + 1)))
        if iters == 4:
            lines.append(json.dumps({'acc/top1': top1, 'step': epoch}))
    (vis / 'scalars.json').write_text('\n'.join(lines) + '\n')
    return vis / 'scalars.json'


def test_a_resumed_runs_logs_join_into_one_curve(tmp_path, capsys):
    """Ctrl-C in epoch 3 (two of its iterations logged), then --resume
    from epoch_2.pth: the second folder repeats epoch 3, and wins."""
    work_dir = tmp_path / 'tdrl'
    first = write_run_part(work_dir, '20240101_000000', [1, 2, 3], top1=0.1,
                           loss=2.0, last_iters=2)
    second = write_run_part(work_dir, '20240101_010000', [3, 4], top1=0.9,
                            loss=1.0)
    out = tmp_path / 'curves.png'
    # the documented command: both logs of the run, one legend name
    assert run_tool(TOOL, 'plot_curve', first, second, '--keys', 'loss',
                    'acc/top1', '--legend', 'tdrl', '--out', out) == 0
    assert '2 logs of a resumed run joined' in capsys.readouterr().out
    assert out.is_file()
    tool = _load_tool()
    groups = tool.group_runs(tool.expand_paths([str(work_dir)]))
    assert list(groups) == [str(work_dir)]
    log = tool.load_run(str(work_dir), groups[str(work_dir)], load_log)
    iters, loss = log.train['loss']
    assert iters.tolist() == list(range(1, 17))  # no iteration twice
    assert loss.tolist() == [2.0] * 8 + [1.0] * 8  # epoch 3: the later
    epochs, top1 = log.val['acc/top1']
    assert epochs.tolist() == [1, 2, 3, 4]
    assert top1.tolist() == [0.1, 0.1, 0.9, 0.9]
    assert log.epochs == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    # a work dir may be given instead of its logs; --separate keeps both
    assert run_tool(TOOL, 'plot_curve', work_dir, '--legend', 'tdrl',
                    '--out', out) == 0
    assert run_tool(TOOL, 'plot_curve', first, second, '--separate',
                    '--legend', 'a', 'b', '--out', out) == 0
    assert run_tool(TOOL, 'cal_train_time', work_dir) == 0
    assert 'average iter time: 0.5000' in capsys.readouterr().out


def _load_tool():
    import importlib.util
    import os.path as osp
    path = osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), TOOL)
    spec = importlib.util.spec_from_file_location('_analyze_logs', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool
