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
