# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""tools/analysis/paper_table.py: the checked FLOPs/params table."""
import os.path as osp
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT, load_tool

TOOL = 'tools/analysis/paper_table.py'
pt = load_tool(TOOL)
DOC = osp.join(REPO_ROOT, 'docs/paper_tables.md')
# A cheap real config: ResNet-18 TDRL on 4 frames (1.8 GFLOPs per frame).
TINY = 'configs/quickstart/tdrl_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py'


def run_tool(*args, timeout=900):
    return subprocess.run([sys.executable, TOOL, '--no-progress', *args],
                          cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


def model_entry(name, config=TINY, **metadata):
    meta = dict(Frames=4, Views='1x1', Parameters='11.37M',
                **{'Paper Table': 'TDRL Table 9', 'Paper Row': name})
    meta.update(metadata)
    return dict(Name=name, Config=config, Metadata=meta)


def write_index(tmp_path, entries):
    """A model index with one metafile holding ``entries``."""
    metafile = tmp_path / 'metafile.yml'
    metafile.write_text(yaml.safe_dump(dict(Models=entries)))
    index = tmp_path / 'model-index.yml'
    index.write_text(yaml.safe_dump(dict(Import=['metafile.yml'])))
    return str(index)


@pytest.fixture(scope='module')
def tiny_cost():
    return pt.CostMeter(REPO_ROOT).measure(TINY)


def test_parse_views():
    assert pt.parse_views('1x1') == (1, 1)
    assert pt.parse_views('10 × 3') == (10, 3)
    for bad in ('10', '0x3', 'ax3', None):
        with pytest.raises(pt.MetafileError, match='Views'):
            pt.parse_views(bad)


def test_rows_from_a_metafile(tmp_path):
    index = write_index(tmp_path, [
        model_entry('single', FLOPs=33),
        model_entry('ensemble', Ensemble=[TINY, 'configs/other.py'],
                    Views='10x3', Frames='4+8'),
    ])
    (metafile, ) = pt.metafiles_of_index(index, REPO_ROOT)
    single, ensemble = pt.load_metafile(metafile, REPO_ROOT)
    assert (single.configs, single.paper_flops, single.views,
            single.frames) == ((TINY, ), 33.0, (1, 1), '4')
    assert ensemble.is_ensemble and ensemble.num_views == 30
    assert ensemble.paper_flops is None
    assert pt.metafiles_of_index('model-index.yml', REPO_ROOT) == [
        'configs/tdn/metafile.yml', 'configs/tdrl/metafile.yml'
    ]


@pytest.mark.parametrize('missing', ['Views', 'Paper Table', 'Paper Row',
                                     'Frames'])
def test_incomplete_entries_are_refused(tmp_path, missing):
    entry = model_entry('row')
    del entry['Metadata'][missing]
    index = write_index(tmp_path, [entry])
    with pytest.raises(pt.MetafileError, match=missing):
        pt.load_metafile(pt.metafiles_of_index(index)[0])


def test_ensemble_config_must_lead(tmp_path):
    index = write_index(tmp_path, [
        model_entry('row', Ensemble=['configs/other.py', TINY])])
    with pytest.raises(pt.MetafileError, match='first Ensemble member'):
        pt.load_metafile(pt.metafiles_of_index(index)[0])


def test_tables_sort_in_paper_order():
    tables = ['TDRL Table 2', 'TDN Table 2', 'TDN Table 1(b)', 'TDN Table 10',
              'TDN Table 1(a)', 'TDRL Table 1']
    assert sorted(tables, key=pt.table_sort_key) == [
        'TDN Table 1(a)', 'TDN Table 1(b)', 'TDN Table 2', 'TDN Table 10',
        'TDRL Table 1', 'TDRL Table 2'
    ]


def test_checks_flops_params_frames_and_configs(tmp_path, tiny_cost):
    assert (tiny_cost.segments, tiny_cost.frames) == (4, 4)
    measured = tiny_cost.flops / 1e9
    params = pt.format_params(tiny_cost.params)
    rows = [
        pt.PaperRow('ok', 'm', 'T', 'ok', (TINY, ), (1, 1), measured * 1.029,
                    params, '4'),
        pt.PaperRow('views', 'm', 'T', 'views', (TINY, ), (10, 3),
                    measured * 30 / 1.02, params, '4'),
        pt.PaperRow('ensemble', 'm', 'T', 'ens', (TINY, TINY), (1, 1),
                    2 * measured, f'{params} + {params}', '4+4'),
        pt.PaperRow('no-paper-flops', 'm', 'T', 'np', (TINY, ), (1, 1), None,
                    params, '4'),
        pt.PaperRow('flops', 'm', 'T', 'f', (TINY, ), (1, 1),
                    measured * 1.04, params, '4'),
        pt.PaperRow('params', 'm', 'T', 'p', (TINY, ), (1, 1), None, '1.00M',
                    '4'),
        pt.PaperRow('frames', 'm', 'T', 'fr', (TINY, ), (1, 1), None, params,
                    '8'),
        pt.PaperRow('config', 'm', 'T', 'c', ('configs/none.py', ), (1, 1),
                    30.0, params, '4'),
    ]
    meter = pt.CostMeter(REPO_ROOT)
    meter._costs[TINY] = tiny_cost  # measured once for the module
    results = {r.row.name: r for r in pt.check_rows(rows, meter,
                                                    progress=False)}
    assert [name for name, r in results.items() if r.ok] == [
        'ok', 'views', 'ensemble', 'no-paper-flops'
    ]
    assert results['ok'].deviation == pytest.approx(1 / 1.029 - 1)
    assert results['views'].measured_flops == pytest.approx(measured * 30)
    assert not results['no-paper-flops'].checked
    assert 'FLOPs' in results['flops'].problems[0]
    assert 'Parameters' in results['params'].problems[0]
    assert 'Frames' in results['frames'].problems[0]
    assert 'no such config' in results['config'].problems[0]
    summary = pt.summary_line(list(results.values()))
    # The unmeasurable row with paper FLOPs counts as not within.
    assert summary.startswith('8 rows in 1 tables: 3/5 with paper FLOPs '
                              'within 3% (largest difference -3.8%: T, "f")')
    assert summary.endswith('3 without paper FLOPs; 4 failed.')
    markdown = pt.render_markdown(list(results.values()))
    assert markdown.startswith('## T\n')
    assert f'| {measured * 1.029:g} | {measured:.2f} | -2.8% |' in markdown
    assert f'×30 = {measured * 30:.2f} | +2.0% |' in markdown
    assert '-3.8% ✗' in markdown
    assert '| — | ' in markdown and 'not in paper' in markdown


def test_command_line_fails_on_a_bad_row(tmp_path, tiny_cost):
    params = pt.format_params(tiny_cost.params)
    good = tiny_cost.flops / 1e9
    index = write_index(tmp_path, [
        model_entry('good', FLOPs=round(good, 2), Parameters=params),
        model_entry('bad', FLOPs=round(good * 1.05, 2), Parameters=params,
                    **{'Paper Table': 'TDRL Table 8'}),
    ])
    result = run_tool('--model-index', index)
    assert result.returncode == 1, result.stderr
    assert 'FAILED bad (TDRL Table 8, "bad"): FLOPs' in result.stdout
    assert '2 rows in 2 tables: 1/2 with paper FLOPs within 3%' in \
        result.stdout
    # In process from here: --tables and --out.
    out = tmp_path / 'table.md'
    assert pt.main(['--model-index', index, '--tables', 'TDRL Table 9',
                    '--out', str(out), '--no-progress']) == 0
    assert '## TDRL Table 9' in out.read_text()
    assert 'TDRL Table 8' not in out.read_text()
    assert pt.main(['--model-index', index, '--tables',
                    'TDN Table 7']) == 2


@pytest.mark.slow
def test_paper_tables_match_and_the_doc_is_current(tmp_path):
    """Every metafile row: configs build, FLOPs within 3 % of the papers',
    parameters and frames as stated; docs/paper_tables.md is this output."""
    out = tmp_path / 'paper_tables.md'
    result = run_tool('--out', str(out))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[
        -3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith('91 rows in 17 tables: 45/45 with paper FLOPs '
                              'within 3%'), summary
    assert '0 failed' in summary
    with open(DOC) as f:
        committed = f.read()
    assert out.read_text() == committed, (
        'docs/paper_tables.md is stale: run python '
        'tools/analysis/paper_table.py --out docs/paper_tables.md')
