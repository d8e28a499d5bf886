# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The bytes-moved counter (tools/analysis/bytes_moved.py): exact counts
on ops of known shapes, inductor's accounting of a tiny compiled function,
and TDN's eager traffic against TSN's at a tiny size (a regression guard:
bytes, unlike times, do not move with the machine's load)."""
import pytest
import torch
import torch.nn as nn
from conftest import load_tool

bm = load_tool('tools/analysis/bytes_moved.py')
bench = load_tool('tools/analysis/benchmark_lib.py')

F32 = 4


def test_known_ops_count_inputs_plus_outputs():
    a, b, bias = torch.randn(3, 5), torch.randn(5, 7), torch.randn(7)
    # (3x5) @ (5x7) -> (3x7): reads 15 + 35, writes 21 floats.
    assert bm.eager_bytes(lambda: a @ b).total == F32 * (15 + 35 + 21)
    # A broadcast bias is read once (its storage), not once per row.
    c = a @ b
    assert bm.eager_bytes(lambda: c + bias).total == F32 * (21 + 7 + 21)
    # The same tensor twice is read once.
    report = bm.eager_bytes(lambda: a * a)
    assert (report.read, report.written) == (F32 * 15, F32 * 15)
    # In place: reads self and writes it again.
    d = a.clone()
    assert bm.eager_bytes(lambda: d.add_(1)).total == 2 * F32 * 15
    # Views move nothing; a copy of a transposed view moves it.
    assert bm.eager_bytes(lambda: (a.view(15), a.t(), a[1:])).total == 0
    assert bm.eager_bytes(lambda: a.t().contiguous()).total == 2 * F32 * 15
    assert bm.eager_bytes(lambda: a.t().contiguous()).by_op == {
        'clone': 2 * F32 * 15}


def test_bytes_are_attributed_to_the_innermost_module():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(3, 4)
    with torch.no_grad():
        report = bm.eager_bytes(lambda: model(x), model)
    linear = F32 * ((3 * 4 + 4 * 8 + 8 + 3 * 8) + (3 * 8 + 8 * 2 + 2 + 3 * 2))
    assert report.by_module == {'Linear': linear, 'ReLU': F32 * 2 * 3 * 8}
    assert sum(report.by_module.values()) == report.total
    assert report.weights == F32 * (4 * 8 + 8 + 8 * 2 + 2)
    assert report.activations == report.total - report.weights


@pytest.mark.slow  # inductor's C++ code generation: ~10 s on 2 cores
def test_inductor_accounting_of_a_fused_kernel():
    a, b = torch.randn(3, 5), torch.randn(5, 7)
    compiled = torch.compile(lambda x, y: (x @ y).relu() + 1, dynamic=False)
    # The matmul (extern kernel) reads 15 + 35 and writes 21 floats; the
    # fused relu + 1 reads and writes the 21 again, nothing in between.
    assert bm.inductor_bytes(lambda: compiled(a, b)) == F32 * (
        15 + 35 + 21 + 2 * 21)
    # Nothing is counted outside the call.
    assert bm.inductor_bytes(lambda: None) == 0


@pytest.fixture(scope='module')
def tiny_bytes():
    settings = bench.BenchmarkSettings(
        depth=18, num_segments=2, img_size=64, threads=1, num_classes=5)
    specs = {s.name: s for s in bench.baseline_specs()}
    specs['tdn_r50'] = bench.parse_model_spec('tdn_r50')
    reports = {}
    for name in ('tsn_r50', 'tdn_r50'):
        runner = bench.ModelRunner(specs[name], settings)
        reports[name] = bm.eager_bytes(runner.infer, runner.model)
    return reports


def test_tdn_eager_traffic_within_a_factor_of_tsn(tiny_bytes):
    tsn, tdn = tiny_bytes['tsn_r50'], tiny_bytes['tdn_r50']
    # R18, T=2, 64 px: the weights (~45 MB) dominate both and are about
    # the same, so the guard is on the rest. TDN reads 5 frames per
    # segment and adds the S-TDM and L-TDMs: 1.99x TSN when written.
    assert 1.5 < tdn.activations / tsn.activations < 2.2
    assert tdn.weights / tsn.weights < 1.1
    assert {'LongTermTDM', 'ShortTermTDM'} <= set(tdn.by_module)
