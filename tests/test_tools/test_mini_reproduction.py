# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""tools/analysis/mini_reproduction.py: its rows are the papers' ablations
(checked on the built configs) and its smoke mode trains every row."""
import json
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, load_tool

TOOL = 'tools/analysis/mini_reproduction.py'


@pytest.fixture(scope='module')
def tool():
    return load_tool(TOOL)


def _configs(tool, tmp_path):
    args = tool.parse_args(['--data-root', str(tmp_path)])
    args.train_list = osp.join(str(tmp_path), 'train_list.txt')
    return {(row[0], row[1]): tool.build_config(row, 0, args,
                                                str(tmp_path / 'w'))
            for row in tool.ROWS}


def _clip_len(cfg, loader):
    step = next(s for s in cfg[loader].dataset.pipeline
                if s['type'] == 'SampleFrames')
    return step['clip_len']


def test_rows_change_only_the_option_under_study(tool, tmp_path):
    cfgs = _configs(tool, tmp_path)
    tdn = cfgs[('tdn-1e', 'S-TDM + L-TDM (TDN)')].model.backbone
    # TDN: the backbone's defaults, S-TDM and L-TDM both on
    assert tdn.type == 'ResNetTDN'
    assert 'short_term_tdm' not in tdn and 'long_term_tdm' not in tdn
    no_tdm = cfgs[('tdn-1e', 'no TDM (temporal conv)')]
    assert no_tdm.model.backbone.short_term_tdm is None
    assert no_tdm.model.backbone.long_term_tdm is None
    # the temporal convs stay: the baseline of Table 1(e)
    assert 'temporal_module' not in no_tdm.model.backbone
    assert _clip_len(no_tdm, 'train_dataloader') == 1
    assert _clip_len(no_tdm, 'test_dataloader') == 1
    stdm = cfgs[('tdn-1e', 'S-TDM only')]
    assert stdm.model.backbone.long_term_tdm is None
    assert _clip_len(stdm, 'train_dataloader') == 5
    avg = cfgs[('tdn-1a', 'averaging')].model.backbone
    assert avg.long_term_tdm.temporal_operator == 'average'
    assert avg.short_term_tdm.input_mode == 'frames'
    tim = cfgs[('tdrl', 'TIM (TSM init)')].model
    assert tim.backbone.enhancement_module is None
    assert tim.cls_head.loss_td is None
    pem = cfgs[('tdrl', '+ PEM')].model
    assert pem.backbone.enhancement_module is not None
    assert pem.cls_head.loss_td is None
    td = cfgs[('tdrl', '+ TD loss')].model
    assert td.backbone.enhancement_module is None
    assert td.cls_head.loss_td.type == 'TemporalDiversityLoss'
    tdn_td = cfgs[('tdn-td', 'TDN + TD loss')].model
    assert tdn_td.backbone.type == 'ResNetTDN'
    assert tdn_td.backbone.td_blocks == ((), (-1, ), (-1, ), (-1, ))
    assert tdn_td.cls_head.loss_td.loss_weight == 2e-4
    # TSM + TD loss: MMAction2's TSM with the TD loss, beside plain TSM
    tsm = cfgs[('tsm-td', 'TSM')]
    assert tsm.model.backbone.type == 'ResNetTSM'
    assert cfgs[('tsm-td', 'TSM + TD loss')].model.backbone.type == \
        'ResNetTSMTD'
    assert _clip_len(tsm, 'train_dataloader') == 1
    # every run is tested by the config's evaluator (runner.test())
    metrics = [m['type'] for m in tsm.test_evaluator]
    assert metrics == ['AccMetric', 'DirectionAccuracy']
    # every run reads the same data
    roots = {cfg.train_dataloader.dataset.ann_file for cfg in cfgs.values()}
    assert roots == {osp.join(str(tmp_path), 'train_list.txt')}


def test_shared_rows_run_once(tool):
    rows = tool.unique_rows(sorted(tool.GROUPS))
    assert len(rows) == len(tool.ROWS) == 14
    # TDN is the last row of Table 1(e), the difference row of Table 1(a)
    # and the reference of the TD-loss-on-TDN pair: trained once per seed.
    assert len({index for index, _ in rows}) == 12


def test_table_is_mean_and_sample_std(tool):
    results = [dict(group='tdrl', row='+ PEM', top1=[0.4, 0.5, 0.6],
                    direction=[0.7, 0.9, 0.8])]
    text = tool.table(results, [0, 1, 2])
    # hand-computed: mean 50, sample std sqrt((1 + 0 + 1) / 2) * 10 = 10
    assert '| + PEM | 50.0 +- 10.0 | 80.0 +- 10.0 | 40 / 50 / 60 |' in text


@pytest.mark.parametrize('index', range(12))
def test_every_row_trains_a_step(tool, tmp_path, index):
    """The model of every distinct row builds and takes one optimiser
    step on a random batch of its own sampling (T=4 segments of clip_len
    frames, 48 x 48), its loss finite."""
    import torch
    from mmaction.registry import MODELS
    from mmaction.structures import ActionDataSample
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')
    rows = {i: row for i, row in tool.unique_rows(sorted(tool.GROUPS))}
    row = rows[index]
    args = tool.parse_args(['--data-root', str(tmp_path)])
    args.train_list = str(tmp_path / 'train_list.txt')
    cfg = tool.build_config(row, 0, args, str(tmp_path / 'w'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    clip_len = _clip_len(cfg, 'train_dataloader')
    inputs = [torch.randint(0, 256, (4 * clip_len, 3, 48, 48),
                            dtype=torch.uint8) for _ in range(2)]
    samples = [ActionDataSample().set_gt_label(label) for label in (0, 1)]
    logs = model.train_step(dict(inputs=inputs, data_samples=samples),
                            wrapper)
    assert torch.isfinite(logs['loss'])
    with_td = row[1] in ('+ TD loss', '+ PEM + TD loss (TDRL)',
                         'TDN + TD loss', 'TSM + TD loss')
    assert ('loss_td' in logs) == with_td, sorted(logs)


def test_smoke_mode_end_to_end(tmp_path):
    """Data, runner, scoring, table and plot, on one group (2 runs)."""
    result = subprocess.run(
        [sys.executable, TOOL, '--smoke', '--rows', 'tdn-td',
         '--data-root', str(tmp_path / 'data'), '--work-dir',
         str(tmp_path / 'work')],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[
        -3000:]
    assert '[2/2]' in result.stdout
    with open(tmp_path / 'work' / 'mini_reproduction.json') as f:
        saved = json.load(f)
    assert saved['smoke'] and saved['seeds'] == [0] and saved['final']
    assert [r['row'] for r in saved['results']] == ['TDN', 'TDN + TD loss']
    for row in saved['results']:
        assert 0.0 <= row['top1'][0] <= 1.0
    text = (tmp_path / 'work' / 'mini_reproduction.md').read_text()
    assert '| TDN + TD loss |' in text
    assert (tmp_path / 'work' / 'mini_reproduction.png').stat().st_size > 0
