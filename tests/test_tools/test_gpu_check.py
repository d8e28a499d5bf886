# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""tools/analysis/gpu_check.py in its CPU smoke mode: every check runs and
passes, and the benchmark table comes last with every model."""
import json

import torch
from conftest import load_tool

gpu_check = load_tool('tools/analysis/gpu_check.py')


def test_smoke_mode_runs_every_check(tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / 'gpu_check.json'
    try:
        rc = gpu_check.main(['--smoke', '--repeats', '1', '--out', str(out)])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    record = json.loads(out.read_text())
    assert rc == 0, record['checks']
    assert set(record['checks']) == {'amp tdn', 'amp tdrl', 'runner', 'ddp',
                                     'onnx'}
    assert all(v.startswith('ok') for v in record['checks'].values())
    rows = record['benchmark']
    assert {(r['model'], r['mode']) for r in rows} == {
        (name, 'eager') for name, _ in gpu_check.MODELS} | {
            ('tsn', 'compiled')}
    assert all(r['status'] == 'ok' and r['ms_per_video'] > 0 for r in rows)
    # The table is printed last: a header, a rule and a row per model/mode.
    table = printed.rstrip().splitlines()[-(len(rows) + 2):]
    assert table[0].startswith('| model | mode | dtype | b2 ms/video')
    assert [line.split(' | ')[0] for line in table[2:]] == [
        f'| {name}' for name, _ in gpu_check.MODELS] + ['| tsn']


def test_budget_marks_cells_not_run(monkeypatch):
    monkeypatch.setattr(gpu_check, 'MODELS', (('tsn', 'tsn_r50'), ))
    setup = gpu_check.Setup(smoke=True, repeats=1)
    rows = gpu_check.run_benchmark(setup, deadline=0., log=lambda _: None)
    assert [(r['model'], r['mode'], r['status']) for r in rows] == [
        ('tsn', 'eager', 'budget'), ('tsn', 'compiled', 'budget')]
    assert gpu_check.format_table(rows).splitlines()[2:] == [
        '| tsn | eager | bf16 | budget | - | - |',
        '| tsn | compiled | bf16 | budget | - | - |']
