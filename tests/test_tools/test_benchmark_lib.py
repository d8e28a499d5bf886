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


def test_conv_class_by_shape():
    cases = {
        'depthwise': [[2, 64, 8, 8], [64, 1, 3, 3], [], []],
        'grouped': [[2, 64, 8, 8], [64, 8, 3, 3]],
        'conv 7x7 stem': [[2, 12, 32, 32], [64, 12, 7, 7]],
        'conv, in or out channels <= 32': [[2, 512, 2, 2], [32, 512, 1, 1]],
        'conv 1x1': [[2, 256, 4, 4], [512, 256, 1, 1]],
        'conv 3x3': [[2, 256, 4, 4], [256, 256, 3, 3], [], [], [], [], []],
        'conv 1x3': [[2, 64, 8, 8], [64, 64, 1, 3]],
        'conv 3x3x3': [[1, 64, 4, 8, 8], [64, 64, 3, 3, 3]],
        'conv (no shapes)': [],
    }
    for expected, shapes in cases.items():
        assert bench.conv_class(shapes) == expected, shapes
    # Few input channels count as small too.
    assert bench.conv_class([[2, 16, 4, 4], [64, 16, 3, 3]]).startswith(
        'conv, in or out channels')
    # A depthwise 1-channel input is an ordinary convolution.
    assert bench.conv_class([[2, 1, 8, 8], [64, 1, 3, 3]]) == \
        'conv, in or out channels <= 32'


def test_fused_family_from_kernel_name():
    family = bench.fused_family
    assert family('graph_0_cpp_fused__native_batch_norm_legit_no_training_'
                  'relu_6') == '_native_batch_norm_legit_no_training_relu'
    assert family('graph_12_cpp_fused_constant_pad_nd_convolution_'
                  'sub_view_14') == 'constant_pad_nd_convolution_sub_view'
    assert family('cpp_fused_add_0') == 'add'
    assert family('graph_1_cpp_fused_convolution_13') == 'convolution'
    for name in ('aten::add', 'aten::mkldnn_convolution',
                 '## Call CompiledFxGraph fsmlg7 ##',
                 'TorchDynamo Cache Lookup'):
        assert family(name) is None


def _synthetic_compiled_events():
    """Two passes: two 3x3 convolutions through oneDNN (three levels),
    one small 1x1 one through the native fallback (four levels), a
    depthwise one, three fused kernels (two of one family) and framework
    overhead; 2000 µs in all."""
    big = [[2, 256, 4, 4], [256, 256, 3, 3], [], [], [], [], []]
    small = [[2, 512, 2, 2], [32, 512, 1, 1], [], [], [], []]
    dw = [[2, 32, 2, 2], [32, 1, 3, 3], [], [], [], [], []]
    return [
        ('aten::convolution', big, 10., 4),
        ('aten::_convolution', big, 6., 4),
        ('aten::mkldnn_convolution', big, 984., 4),
        ('aten::convolution', small, 5., 2),
        ('aten::_convolution', small, 5., 2),
        ('aten::thnn_conv2d', small, 5., 2),
        ('aten::_slow_conv2d_forward', small, 185., 2),
        ('aten::mkldnn_convolution', dw, 100., 2),
        ('graph_0_cpp_fused_relu_1', [], 300., 2),
        ('graph_0_cpp_fused_relu_5', [], 100., 2),
        ('graph_0_cpp_fused_constant_pad_nd_add_2', [], 50., 2),
        ('## Call CompiledFxGraph abc ##', [], 150., 2),
        ('aten::empty', [[], []], 100., 10),
    ]


def test_group_compiled_profile_parts_add_up():
    profile = bench.group_compiled_profile(
        _synthetic_compiled_events(), passes=2)
    assert profile['passes'] == 2
    assert profile['total_ms'] == pytest.approx(1.0)
    convs = {row['class']: (row['calls'], row['ms'])
             for row in profile['convolutions']}
    # A convolution's levels are one call, their self times one time.
    assert convs == {
        'conv 3x3': (2, pytest.approx(0.5)),
        'conv, in or out channels <= 32': (1, pytest.approx(0.1)),
        'depthwise': (1, pytest.approx(0.05)),
    }
    assert [row['class'] for row in profile['convolutions']] == [
        'conv 3x3', 'conv, in or out channels <= 32', 'depthwise'
    ]
    fused = {row['family']: (row['calls'], row['kernels'], row['ms'])
             for row in profile['fused']}
    assert fused == {
        'relu': (2, 2, pytest.approx(0.2)),
        'constant_pad_nd_add': (1, 1, pytest.approx(0.025)),
    }
    other = profile['other']
    assert other['ms'] == pytest.approx(0.125) and other['calls'] == 6
    assert other['top'][0] == ['## Call CompiledFxGraph abc ##',
                               pytest.approx(0.075)]
    parts = (sum(row['ms'] for row in profile['convolutions']) +
             sum(row['ms'] for row in profile['fused']) + other['ms'])
    assert parts == pytest.approx(profile['total_ms'])
    shares = (sum(row['share'] for row in profile['convolutions']) +
              sum(row['share'] for row in profile['fused']) +
              other['share'])
    assert shares == pytest.approx(1)
    # Single kernels by time: a convolution is named by its innermost
    # (slowest) level and its shapes.
    kernels = [(k['name'], k['kind'], k['calls'], k['ms'])
               for k in profile['kernels']]
    assert kernels[:3] == [
        ('aten::mkldnn_convolution [2,256,4,4] x [256,256,3,3]',
         'conv 3x3', 2, pytest.approx(0.5)),
        ('graph_0_cpp_fused_relu_1', 'fused', 1, pytest.approx(0.15)),
        ('aten::_slow_conv2d_forward [2,512,2,2] x [32,512,1,1]',
         'conv, in or out channels <= 32', 1, pytest.approx(0.1)),
    ]
    assert len(kernels) == 6
    with pytest.raises(ValueError, match='passes'):
        bench.group_compiled_profile([], passes=0)


def test_format_compiled_profile_rows_add_up():
    profile = bench.group_compiled_profile(
        _synthetic_compiled_events(), passes=2)
    lines = bench.format_compiled_profile('m (compiled)', profile,
                                          top=1).splitlines()
    assert lines[0].startswith('m (compiled): 1.0 ms per pass')
    table = lines[3:lines.index('| total | | 1.00 | 100.0% |')]
    assert [row.split(' | ')[0] for row in table] == [
        '| extern conv 3x3', '| extern conv, in or out channels <= 32',
        '| extern depthwise', '| fused relu (2 kernels)',
        '| fused, 1 other families', '| other (ATen ops, framework)'
    ]
    assert sum(float(row.split(' | ')[2]) for row in table) == \
        pytest.approx(1.0, abs=0.01)
    kernels = lines[lines.index('m (compiled): top 1 kernels'):]
    assert len(kernels) == 3 + 1
    assert kernels[-1].startswith(
        '| aten::mkldnn_convolution [2,256,4,4] x [256,256,3,3] | conv 3x3 '
        '| 2 | 0.50 |')


def test_kernel_profile_is_set_per_compiled_call_only():
    """``kernel_profile``: inductor's ``cpp.enable_kernel_profile`` is on
    while the model compiles, and the process's own setting is kept."""
    import dataclasses

    import torch._dynamo
    import torch._inductor.config as inductor_config
    seen = []

    def backend(gm, example_inputs):
        seen.append(inductor_config.cpp.enable_kernel_profile)
        return gm.forward

    model = torch.nn.Linear(3, 2)
    torch._dynamo.reset()
    try:
        for kernel_profile in (True, False):
            torch._dynamo.reset()
            settings = dataclasses.replace(
                TINY, compile=True, compile_backend=backend,
                kernel_profile=kernel_profile)
            bench.compile_model(model, settings)(torch.ones(1, 3))
    finally:
        torch._dynamo.reset()
    assert seen == [True, False]
    assert inductor_config.cpp.enable_kernel_profile is False


def test_profile_compiled_needs_kernel_profile():
    runner = bench.ModelRunner(bench.baseline_specs()[0], TINY)
    with pytest.raises(ValueError, match='kernel_profile=True'):
        bench.profile_compiled(runner)
