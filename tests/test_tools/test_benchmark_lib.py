# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The benchmark's measuring logic, on a tiny setting (no timing checks:
speed targets are checked by running tools/analysis/benchmark.py)."""
import importlib.util
import json
import os.path as osp
import sys

import pytest
import torch

ANALYSIS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
    'analysis')


def _load(name):
    """A module of tools/analysis (developer tooling, not in the package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ANALYSIS, name + '.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load('benchmark_lib')

TINY = bench.BenchmarkSettings(
    depth=18,
    num_segments=2,
    img_size=64,
    train_batch=2,
    repeats=1,
    warmup=1,
    threads=1,
    num_classes=5)


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_time_stats_median_and_spread():
    stats = bench.TimeStats.from_seconds([0.004, 0.001, 0.002, 0.003])
    assert stats.median == pytest.approx(2.5)
    assert (stats.minimum, stats.maximum) == (1.0, 4.0)
    assert stats.q1 <= stats.median <= stats.q3
    assert stats.relative_spread == pytest.approx(
        (stats.q3 - stats.q1) / 2 / 2.5)
    single = bench.TimeStats.from_seconds([0.001])
    assert single.median == single.q1 == single.q3 == 1.0


def test_parse_model_spec():
    spec = bench.parse_model_spec('no_td=tdrl_r50,cls_head.loss_td=None')
    assert spec.name == 'no_td'
    assert spec.config['backbone']['type'] == 'ResNetTDRL'
    assert spec.config['cls_head']['loss_td'] is None
    spec = bench.parse_model_spec('ResNetTDN,backbone.num_segments=4')
    assert spec.name == 'ResNetTDN'
    assert spec.config['type'] == 'SegmentRecognizer2D'
    assert spec.config['backbone'] == dict(
        type='ResNetTDN', depth=50, num_segments=4)
    assert bench.parse_model_spec('tsm_r50').config['backbone']['type'] == \
        'ResNetTSM'
    with pytest.raises(ValueError, match='KEY=VALUE'):
        bench.parse_model_spec('tdn_r50,backbone.depth')


def test_apply_settings_matches_baselines_to_ours():
    tsm = bench.apply_settings(bench.mmaction_base_model('tsm_r50'), TINY)
    assert tsm['backbone']['num_segments'] == tsm['cls_head'][
        'num_segments'] == 2
    assert tsm['backbone']['pretrained'] is None
    assert tsm['cls_head']['in_channels'] == 512
    tsn = bench.apply_settings(bench.mmaction_base_model('tsn_r50'), TINY)
    assert 'num_segments' not in tsn['backbone']


def test_peak_tensor_memory_counts_live_tensors():

    def allocate():
        a = torch.empty(2**20, dtype=torch.uint8)  # 1 MiB
        b = torch.empty(2**21, dtype=torch.uint8)  # 2 MiB, a still alive
        del a, b
        return torch.empty(2**20, dtype=torch.uint8)  # 1 MiB

    peak = bench.peak_tensor_memory(allocate)
    assert 3 * 2**20 <= peak < 3 * 2**20 + 2**16


def test_run_benchmark_table_and_json():
    calls = []
    specs = [bench.parse_model_spec('tdn_r50')]
    results = bench.run_benchmark(specs, TINY, progress=calls.append)
    assert len(calls) == bench.count_work(len(specs), TINY)
    assert [r.name for r in results] == ['tsn_r50', 'tsm_r50', 'tdn_r50']
    tdn = results[-1]
    assert tdn.backbone == 'ResNetTDN' and tdn.frames_per_view == 10
    assert tdn.gflops > 0 and tdn.train_peak_mib > 0
    assert tdn.inference.median > 0 and tdn.train_step.median > 0

    ratios = bench.ratios(results)
    assert ratios['tsn_r50']['vs_tsn_r50']['inference_ms'] == 1
    assert ratios['tdn_r50']['vs_tsm_r50']['train_peak_mib'] == \
        pytest.approx(tdn.train_peak_mib / results[1].train_peak_mib)

    table = bench.format_table(results).splitlines()
    assert table[0].startswith('| model | backbone | frames |')
    assert len(table) == 2 + len(results)
    assert all(line.count('|') == table[0].count('|') for line in table)
    assert 'tdn_r50: infer' in bench.summary_line(results)

    record = json.loads(
        json.dumps(
            bench.results_to_json(results, TINY, bench.machine_info())))
    assert record['settings']['depth'] == 18
    assert record['machine']['intra_op_threads'] == 1
    model = record['models'][-1]
    assert set(model) >= {
        'name', 'gflops', 'gflops_per_s', 'inference', 'train_step',
        'train_peak_mib', 'inference_peak_mib', 'ratios'
    }
    assert set(model['inference']) >= {'median', 'q1', 'q3', 'samples'}
    assert set(model['ratios']) == {'vs_tsn_r50', 'vs_tsm_r50'}


def test_profile_modules_accounts_for_the_pass():
    bench.set_threads(1)
    runner = bench.ModelRunner(bench.parse_model_spec('tdn_r50'), TINY)
    rows = bench.profile_modules(runner, repeats=1)
    names = {row['module'] for row in rows}
    assert {'LongTermTDM', 'ShortTermTDM', 'Conv2d'} <= names
    assert sum(row['share'] for row in rows) == pytest.approx(1, abs=1e-6)
    assert all(row['inclusive_ms'] >= row['self_ms'] - 1e-9 for row in rows)
    train = bench.profile_modules(runner, repeats=1, mode='train')
    assert '(backward + optimizer)' in {row['module'] for row in train}
    text = bench.format_profile('tdn', rows, top=3).splitlines()
    assert len(text) == 3 + 3 and 'by module type' in text[0]


def _result(name, infer_ms, train_ms=None, compiled=False):
    stats = bench.TimeStats.from_seconds
    return bench.ModelResult(
        name=name, backbone='X', frames_per_view=8, params_m=1.0, gflops=1.0,
        inference=stats([infer_ms / 1e3]),
        train_step=stats([train_ms / 1e3]) if train_ms else None,
        inference_peak_mib=1.0, train_peak_mib=1.0 if train_ms else None,
        compiled=compiled)


def test_compiled_rows_are_compared_with_compiled_baselines():
    c = bench.COMPILED
    results = [
        _result('tsn_r50', 100, 300), _result('tsm_r50', 110, 320),
        _result('tdn_r50', 120, 390), _result('tdn_deploy', 115),
        _result('tsn_r50' + c, 50, 200, True),
        _result('tsm_r50' + c, 55, 210, True),
        _result('tdn_r50' + c, 60, 240, True)
    ]
    rel = bench.ratios(results)
    assert rel['tdn_r50']['vs_tsn_r50']['inference_ms'] == \
        pytest.approx(1.2)
    assert rel['tdn_r50' + c]['vs_tsn_r50']['inference_ms'] == \
        pytest.approx(1.2)
    assert rel['tdn_r50' + c]['vs_tsn_r50']['train_step_ms'] == \
        pytest.approx(1.2)
    assert 'train_step_ms' not in rel['tdn_deploy']['vs_tsn_r50']
    table = bench.format_table(results).splitlines()
    assert all(line.count('|') == table[0].count('|') for line in table)
    summary = bench.summary_line(results)
    assert 'tdn_r50 (compiled): infer 1.20x TSN' in summary
    assert 'tsn_r50 (compiled)' not in summary


def test_deploy_and_release_specs():
    spec = bench.parse_model_spec('tdn_deploy=tdn_r50,deploy')
    assert spec.deploy and spec.name == 'tdn_deploy'
    assert spec.config['backbone']['type'] == 'ResNetTDN'
    release = bench.parse_model_spec('tdn_release')
    settings = bench.BenchmarkSettings(depth=50, num_segments=2,
                                       img_size=64, num_classes=5)
    runner = bench.ModelRunner(release, settings)
    assert runner.view.shape == (1, 10, 3, 64, 64)
    assert runner.infer().shape == (1, 5)
    assert runner.train_step() > 0
    # Compilable: dynamo imports the release module's globals by name.
    from dataclasses import replace
    compiled = bench.ModelRunner(
        release, replace(settings, compile=True, compile_backend='eager'),
        compiled=True)
    compiled.model.load_state_dict(runner.model.state_dict())
    torch.testing.assert_close(compiled.infer(), runner.infer())
    with pytest.raises(ValueError, match='ResNet-50 only'):
        bench.ModelRunner(release, TINY)


def test_compiled_models_train_only_when_asked():
    from dataclasses import replace
    spec = bench.parse_model_spec('tdrl_r50')
    assert bench.ModelRunner(spec, TINY).trains
    # torch.compile is lazy: building the runner compiles nothing
    assert not bench.ModelRunner(
        spec, replace(TINY, compile=True), compiled=True).trains
    assert bench.ModelRunner(
        spec, replace(TINY, compile=True, compile_train=True),
        compiled=True).trains
    deployed = bench.parse_model_spec('tdn_deploy=tdn_r50,deploy')
    assert not bench.ModelRunner(deployed, TINY).trains


def test_compiled_models_keep_static_shapes_after_one_another(
        recording_compile_backend):
    """TSN (8 frames per view) then TDN (40) through the shared
    ``BaseModel.forward``: each model gets its own graphs with fixed
    shapes. With dynamo's default a size guard fails for the second model
    and it is re-traced with a symbolic frame axis (TDN-R50: no end in 27
    minutes), which the backend would see as ``SymInt`` sizes."""
    from dataclasses import replace
    backend, graphs = recording_compile_backend
    settings = replace(TINY, compile=True, compile_backend=backend)
    for name in ('tsn', 'tdn_r50'):
        spec = (bench.baseline_specs()[0] if name == 'tsn' else
                bench.parse_model_spec(name))
        runner = bench.ModelRunner(spec, settings, compiled=True)
        eager = bench.ModelRunner(spec, settings)
        eager.model.load_state_dict(runner.model.state_dict())
        torch.testing.assert_close(runner.infer(), eager.infer())
    symbolic = [size for graph in graphs for size in graph]
    assert not symbolic


def test_bytes_moved_column_and_table():
    """``bytes=True``: eager bytes per inference in every result, their
    ratios, and a bytes table with the per-module breakdown."""
    import dataclasses
    settings = dataclasses.replace(TINY, bytes=True)
    results = bench.run_benchmark([], settings)
    tsn, tsm = results
    assert tsn.inference_bytes > 0 and tsm.inference_bytes > 0
    assert sum(tsn.bytes_by_module.values()) == tsn.inference_bytes
    # TSM adds its shift's copies to the same convolutions.
    assert 'TemporalShift' in tsm.bytes_by_module
    assert bench.ratios(results)['tsm_r50']['vs_tsn_r50'][
        'inference_bytes'] == pytest.approx(
            tsm.inference_bytes / tsn.inference_bytes)
    text = bench.format_bytes(results)
    assert '| tsm_r50 | ' in text and 'TemporalShift' in text
    assert 'bytes' in bench.summary_line(
        results + [dataclasses.replace(tsm, name='x')])
