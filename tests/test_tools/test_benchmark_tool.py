# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""tools/analysis/benchmark.py: output format and JSON on a tiny setting
(speed targets are read from a real run, never asserted in tests)."""
import importlib.util
import json
import os
import os.path as osp
import shutil

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'analysis', 'benchmark.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_video(shared_dir, tmp_path):
    """A folder with the shortest of the shared real videos."""
    folder = tmp_path / 'videos'
    folder.mkdir()
    shutil.copy(
        osp.join(shared_dir, 'data', 'videos', 'test.avi'), folder)
    return str(folder)


def test_tiny_run_prints_tables_and_writes_json(one_video, tmp_path,
                                                capsys):
    threads = torch.get_num_threads()
    out = tmp_path / 'bench' / 'result.json'
    try:
        code = _load_tool().main([
            'tdn_r50', '--depth', '18', '--num-segments', '2',
            '--img-size', '64', '--repeats', '1', '--warmup', '0',
            '--threads', '1', '--profile', '--profile-top', '3',
            '--pipeline', '--videos', one_video, '--pipeline-repeats', '1',
            '--out',
            str(out)
        ])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    stdout = capsys.readouterr().out
    lines = stdout.splitlines()
    assert lines[0].startswith('threads: 1 intra-op')
    assert 'load average at start' in lines[0]
    header = [i for i, line in enumerate(lines)
              if line.startswith('| model | backbone |')]
    assert len(header) == 1
    rows = lines[header[0] + 2:header[0] + 5]
    assert [row.split('|')[1].strip() for row in rows] == [
        'tsn_r50', 'tsm_r50', 'tdn_r50'
    ]
    # One inference and one training profile per model.
    assert sum('by module type' in line for line in lines) == 6
    assert any(line.startswith('| decode | tdn |') for line in lines)
    assert lines[-1].startswith('summary (1 threads): tdn_r50: infer ')
    assert 'pipeline TDN/TSN clips/s: decode' in lines[-1]
    assert lines[-1].endswith(str(out))

    record = json.loads(out.read_text())
    assert set(record) >= {'settings', 'machine', 'models', 'profiles',
                           'pipeline'}
    assert record['machine']['intra_op_threads'] == 1
    assert len(record['machine']['load_average_end']) == 3
    assert [m['name'] for m in record['models']] == [
        'tsn_r50', 'tsm_r50', 'tdn_r50'
    ]
    assert record['models'][2]['ratios']['vs_tsn_r50']['inference_ms'] > 0
    assert set(record['profiles']['tdn_r50']) == {'inference', 'train'}
    assert set(record['pipeline']['tdn_over_tsn']) == {'decode', 'train'}
    assert os.path.basename(record['pipeline']['videos'][0]) == 'test.avi'


@pytest.mark.slow  # inductor compiles TSN and TSM (~30 s each, 2 cores)
def test_compiled_profile_tables(tmp_path, capsys):
    """``--compile --profile``: every compiled model's inference split by
    extern convolution class and fused kernel family (the second model is
    TSN's structure again, so that dynamo reuses its graphs: two
    compilations in all)."""
    import torch._inductor.config as inductor_config
    threads = torch.get_num_threads()
    kineto_level = os.environ.get('KINETO_LOG_LEVEL')
    out = tmp_path / 'result.json'
    try:
        code = _load_tool().main([
            'x=tsn_r50', '--depth', '18', '--num-segments', '2',
            '--img-size', '32', '--repeats', '1', '--warmup', '0',
            '--threads', '1', '--compile', '--profile', '--profile-top', '3',
            '--out', str(out)
        ])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    # Only the compiled calls profiled inductor's kernels, and kineto's
    # quieting is the tool's alone.
    assert inductor_config.cpp.enable_kernel_profile is False
    assert os.environ.get('KINETO_LOG_LEVEL') == kineto_level
    lines = capsys.readouterr().out.splitlines()
    assert sum('by module type' in line for line in lines) == 6
    names = [line.split(':')[0] for line in lines
             if 'by extern convolution class' in line]
    assert names == ['tsn_r50 (compiled)', 'tsm_r50 (compiled)',
                     'x (compiled)']
    start = lines.index(next(line for line in lines
                             if line.startswith('x (compiled): ')))
    table = lines[start + 3:lines.index('', start)]
    assert table[0].startswith('| extern conv 3x3 | 16 |')
    assert any(row.startswith('| fused _native_batch_norm') for row in table)
    assert table[-3].startswith('| other (ATen ops, framework) |')
    assert table[-2].startswith('| total | |')
    assert table[-1].startswith('other, largest: ')
    assert sum('top 3 kernels' in line for line in lines) == 3

    record = json.loads(out.read_text())
    assert record['settings']['kernel_profile'] is True
    assert set(record['compiled_profiles']) == set(names)
    for profile in record['compiled_profiles'].values():
        # Inductor's kernels recorded their events.
        assert profile['fused'] and profile['convolutions']
        parts = sum(row['ms'] for key in ('convolutions', 'fused')
                    for row in profile[key]) + profile['other']['ms']
        assert parts == pytest.approx(profile['total_ms'])
