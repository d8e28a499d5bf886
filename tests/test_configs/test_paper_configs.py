# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The paper-row configs and their metafiles (configs/tdn, configs/tdrl).

Every check here reads configs and metafiles only; building models and
counting FLOPs is tests/test_tools/test_paper_table.py.
"""
import glob
import os.path as osp
import re
from collections import Counter

import pytest
import yaml
from conftest import REPO_ROOT, load_tool
from mmengine.config import Config

from mmaction_tdx.datasets import STHV1_FLIP_LABEL_MAP, STHV2_FLIP_LABEL_MAP
from mmaction_tdx.engine.hooks.sampling_check_hook import sampling_problems

pt = load_tool('tools/analysis/paper_table.py')

CONFIGS = sorted(
    osp.relpath(path, REPO_ROOT) for method in ('tdn', 'tdrl')
    for path in glob.glob(f'{REPO_ROOT}/configs/{method}/**/*.py',
                          recursive=True))
METAFILES = ('configs/tdn/metafile.yml', 'configs/tdrl/metafile.yml')
# Rows per paper table: every row of the papers that is the authors' own
# model, ablation or baseline (TDN Table 2: V1 and V2).
EXPECTED_ROWS = {
    'TDN Table 1(a)': 4, 'TDN Table 1(b)': 5, 'TDN Table 1(c)': 5,
    'TDN Table 1(d)': 4, 'TDN Table 1(e)': 5, 'TDN Table 1(f)': 7,
    'TDN Table 2': 12, 'TDN Table 3': 6, 'TDN Table 4': 2, 'TDN Table 5': 5,
    'TDRL Table 1': 10, 'TDRL Table 2': 2, 'TDRL Table 3': 4,
    'TDRL Table 4': 5, 'TDRL Table 5': 5, 'TDRL Table 6': 5,
    'TDRL Table 7': 5
}
NUM_CLASSES = {'sthv1': 174, 'sthv2': 174, 'kinetics400': 400,
               'ucf101': 101, 'hmdb51': 51}
# Learning rate for the schedule's base batch, milestones, epochs, weight
# decay, gradient clipping: the papers (Sec. 4) and the TDN release.
SCHEDULES = {
    ('tdn', 'sth'): (0.01, 64, [30, 45, 55], 60, 5e-4, 20),
    ('tdn', 'kinetics400'): (0.02, 128, [50, 75, 90], 100, 1e-4, 20),
    ('tdn', 'finetune'): (0.001, 64, [10, 20], 25, 5e-4, 20),
    ('tdrl', 'sth'): (0.01, 64, [30, 40, 45], 50, 1e-4, None),
    ('tdrl', 'kinetics400'): (0.01, 64, [50, 75, 90], 100, 1e-4, None),
}
SAMPLERS = ('SampleFrames', 'DenseSampleFrames', 'SegmentSampleFrames')
NAME = re.compile(r'(?P<algo>[\w-]+)_(?P<pretrain>[\w-]+)-pretrained-'
                  r'(?P<backbone>r\d+)(?:-[\w-]+)?_(?P<gpus>\d+)xb(?P<batch>\d+)'
                  r'-(?P<dense>dense-)?(?P<clip>\d+)x(?P<interval>\d+)x'
                  r'(?P<segments>\d+)-(?P<epochs>\d+)e_(?P<data>[a-z0-9]+)'
                  r'(?:-split1)?-rgb(?:_test-2clips-3crops)?\.py')


@pytest.fixture(scope='module')
def configs():
    return {path: Config.fromfile(osp.join(REPO_ROOT, path))
            for path in CONFIGS}


@pytest.fixture(scope='module')
def rows():
    return [row for metafile in METAFILES
            for row in pt.load_metafile(metafile, REPO_ROOT)]


@pytest.fixture(scope='module')
def entries():
    result = []
    for metafile in METAFILES:
        with open(osp.join(REPO_ROOT, metafile)) as f:
            result += yaml.safe_load(f)['Models']
    return result


def sampler(pipeline):
    steps = [s for s in pipeline if s['type'] in SAMPLERS]
    assert len(steps) == 1, pipeline
    return steps[0]


def test_every_config_is_a_paper_row_and_every_row_has_its_config(rows):
    used = {config for row in rows for config in row.configs}
    assert used == set(CONFIGS)
    assert len(CONFIGS) == 65


def test_metafiles_cover_every_table_row(rows):
    assert Counter(row.table for row in rows) == EXPECTED_ROWS
    assert not pt.duplicate_names(rows)
    # A row of a table appears once.
    assert len({(r.table, r.row) for r in rows}) == len(rows)
    index = pt.metafiles_of_index('model-index.yml', REPO_ROOT)
    assert tuple(index) == METAFILES


def test_metafile_entries_follow_the_model_index_format(entries):
    required = ('Architecture', 'Backbone', 'Frames', 'Views', 'Parameters',
                'Training Data', 'Paper Table', 'Paper Row')
    for entry in entries:
        assert entry['In Collection'] in ('TDN', 'TDRL')
        meta = entry['Metadata']
        assert all(key in meta for key in required), entry['Name']
        assert meta['Results Source'] == 'paper'
        for result in entry['Results']:
            assert result['Task'] == 'Action Recognition'
            assert result['Dataset'].split(' (')[0] == meta['Training Data']
            assert 0 < result['Metrics']['Top 1 Accuracy'] < 100
        if 'FLOPs' in meta:
            assert isinstance(meta['FLOPs'], (int, float))
        # Home rows are named after their config; rows repeating a model
        # add the table ("..._tdn-table1a"), ensembles say so.
        stem = osp.basename(entry['Config'])[:-3]
        if 'Ensemble' in meta:
            assert '-ensemble-' in entry['Name']
        else:
            paper, number, sub = re.fullmatch(
                r'(\S+) Table (\d+)(?:\((\w)\))?',
                meta['Paper Table']).groups()
            assert entry['Name'] in (
                stem, f'{stem}_{paper.lower()}-table{number}{sub or ""}')


def test_weights_are_the_release_checkpoints(entries):
    """Only TDN rows whose model the release published carry Weights: the
    Google Drive folders of the MCG-NJU/TDN README, plus how to convert."""
    with_weights = {e['Config'] for e in entries if 'Weights' in e}
    assert with_weights == {
        f'configs/tdn/tdn_imagenet-pretrained-r{depth}_{run}.py'
        for depth, run in [(50, '8xb8-5x1x8-60e_sthv1-rgb'),
                           (50, '8xb8-5x1x16-60e_sthv1-rgb'),
                           (50, '8xb8-5x1x8-60e_sthv2-rgb'),
                           (50, '8xb8-5x1x16-60e_sthv2-rgb'),
                           (101, '8xb8-5x1x8-60e_sthv2-rgb'),
                           (101, '8xb8-5x1x16-60e_sthv2-rgb'),
                           (50, '8xb16-5x1x8-100e_kinetics400-rgb'),
                           (50, '8xb16-5x1x16-100e_kinetics400-rgb'),
                           (101, '8xb16-5x1x8-100e_kinetics400-rgb'),
                           (101, '8xb16-5x1x16-100e_kinetics400-rgb')]
    }
    for entry in entries:
        if 'Weights' in entry:
            # The R101 SthV2 ones: the release README's V2 table.
            assert entry['Weights'].startswith(
                ('https://drive.google.com/drive/folders/',
                 'https://github.com/MCG-NJU/TDN#something-something-v2'))
            command = entry['Weights Conversion']
            assert command.startswith('python tools/convert/tdn_official.py')
            order = re.search(r'_(sthv[12])-rgb', entry['Config'])
            if order:
                assert command.endswith(f'--label-order {order.group(1)}')
            else:  # Kinetics-400: the release's order is MMAction2's
                assert '--label-order' not in command


def test_configs_inherit_our_runtime(configs):
    for path, cfg in configs.items():
        assert cfg.custom_imports.imports == ['mmaction_tdx'], path
        assert cfg.default_hooks.sampling_check.type == 'SamplingCheckHook'
        assert cfg.default_hooks.strict_load.type == 'StrictLoadHook'
        assert cfg.default_scope == 'mmaction'


def test_imagenet_weights_need_no_torchvision(configs):
    """ImageNet ResNets by URL (torchvision's file of the papers' time);
    `torchvision://` names need torchvision installed."""
    for path, cfg in configs.items():
        pretrained = cfg.model.backbone.pretrained
        if 'kinetics400-pretrained' in path:
            assert pretrained is None, path  # load_from has everything
            continue
        depth = cfg.model.backbone.depth
        assert pretrained == {
            50: 'https://download.pytorch.org/models/resnet50-19c8e357.pth',
            101: 'https://download.pytorch.org/models/resnet101-5d3b4d8f.pth'
        }[depth], path


def test_names_say_what_configs_do(configs):
    """MMAction2's naming: {algo}_{pretrain}-{backbone}[-variant]_
    {gpus}xb{batch}-{clip_len}x{interval}x{segments}-{epochs}e_{data}-rgb."""
    for path, cfg in configs.items():
        match = NAME.fullmatch(osp.basename(path))
        assert match, path
        name = match.groupdict()
        assert cfg.train_dataloader.batch_size == int(name['batch']), path
        assert cfg.train_cfg.max_epochs == int(name['epochs']), path
        assert cfg.model.cls_head.num_classes == NUM_CLASSES[name['data']]
        assert f'data/{name["data"]}' in cfg.train_dataloader.dataset.ann_file
        depth = cfg.model.backbone.get('depth')
        assert depth == int(name['backbone'][1:]), path
        train = sampler(cfg.train_dataloader.dataset.pipeline)
        assert train['type'] == ('DenseSampleFrames'
                                 if name['dense'] else 'SampleFrames'), path
        assert (train['clip_len'], train.get('frame_interval', 1),
                train['num_clips']) == (int(name['clip']),
                                        int(name['interval']),
                                        int(name['segments'])), path
        # The learning rate is for gpus x batch videos per iteration.
        assert cfg.auto_scale_lr.enable
        assert cfg.auto_scale_lr.base_batch_size == int(name['gpus']) * int(
            name['batch']), path


def test_schedules_follow_the_papers(configs):
    for path, cfg in configs.items():
        method = 'tdrl' if '/tdrl/' in path else 'tdn'
        kind = ('finetune' if 'kinetics400-pretrained' in path else
                'kinetics400' if 'kinetics400-rgb' in path else 'sth')
        lr, base, milestones, epochs, wd, clip = SCHEDULES[(method, kind)]
        optimizer = cfg.optim_wrapper.optimizer
        assert (optimizer.type, optimizer.lr, optimizer.momentum,
                optimizer.weight_decay) == ('SGD', lr, 0.9, wd), path
        assert cfg.auto_scale_lr.base_batch_size == base, path
        (scheduler, ) = cfg.param_scheduler
        assert (scheduler.type, scheduler.milestones, scheduler.gamma,
                scheduler.end) == ('MultiStepLR', milestones, 0.1, epochs)
        assert cfg.train_cfg.max_epochs == epochs
        clip_grad = cfg.optim_wrapper.get('clip_grad')
        assert (clip_grad and clip_grad.max_norm) == clip, path
        if method == 'tdn':
            # The release: one lr and one decay for every parameter
            # (tests/test_configs/test_tdn_release_recipe.py).
            assert 'constructor' not in cfg.optim_wrapper, path
            assert 'paramwise_cfg' not in cfg.optim_wrapper, path


def test_pipelines_sample_what_the_models_read(configs):
    for path, cfg in configs.items():
        backbone = cfg.model.backbone
        segments = backbone.get('num_segments', 8)
        per_segment = 5 if (backbone.type == 'ResNetTDN' and backbone.get(
            'short_term_tdm', {}) is not None) else 1
        if backbone.type in ('ResNetTDN', 'ResNetTDRL'):
            assert not sampling_problems(cfg, segments, per_segment,
                                         backbone.type), path
        if cfg.model.cls_head.type == 'TSMHead':
            assert cfg.model.cls_head.num_segments == segments
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            step = sampler(cfg[loader].dataset.pipeline)
            assert step['clip_len'] == per_segment, (path, loader)
            assert step['num_clips'] == segments, (path, loader)
            assert step.get('test_mode', False) == (
                loader != 'train_dataloader')
            if per_segment > 1 and loader != 'train_dataloader':
                # TDN's release test sampling (SampleFrames would spread
                # 5-frame snippets end to end).
                assert step['type'] == 'SegmentSampleFrames', path


def test_something_something_flips_swap_left_and_right(configs):
    for path, cfg in configs.items():
        flips = [s for s in cfg.train_dataloader.dataset.pipeline
                 if s['type'] == 'Flip']
        assert len(flips) == 1 and flips[0].flip_ratio == 0.5, path
        expected = {'sthv1': STHV1_FLIP_LABEL_MAP,
                    'sthv2': STHV2_FLIP_LABEL_MAP}.get(
                        re.search(r'_(\w+?)(-split1)?-rgb', path).group(1))
        assert flips[0].get('flip_label_map') == expected, path


def _test_views(pipeline):
    step = sampler(pipeline)
    clips = (step.get('num_views', 1) if step['type'] == 'SegmentSampleFrames'
             else step.get('num_sample_positions', 10) if step['type'] ==
             'DenseSampleFrames' else 2 if step.get('twice_sample') else 1)
    crop = [s for s in pipeline if s['type'] in ('CenterCrop', 'ThreeCrop')]
    assert len(crop) == 1
    crops = 3 if crop[0]['type'] == 'ThreeCrop' else 1
    # Single view: 224 centre crop; 3 crops: 256x256 (Sec. 4 of both).
    assert crop[0]['crop_size'] == (256 if crops == 3 else 224)
    return clips, crops


def test_metafile_views_are_the_test_pipelines(configs, rows):
    for row in rows:
        for config in row.configs:
            cfg = configs[config]
            views = _test_views(cfg.test_dataloader.dataset.pipeline)
            assert views == row.views, (row.name, config)
            val = _test_views(cfg.val_dataloader.dataset.pipeline)
            assert val == (1, 1), config


def test_test_configs_only_change_the_test_pipeline(configs):
    for path in configs:
        if not path.endswith('_test-2clips-3crops.py'):
            continue
        test_cfg = configs[path].to_dict()
        trained = configs[path.replace('_test-2clips-3crops', '')].to_dict()
        for key in ('test_pipeline', 'test_dataloader'):
            assert test_cfg.pop(key) != trained.pop(key)
        assert test_cfg == trained, path


def test_finetuning_loads_a_kinetics_tdn_with_a_new_head(configs):
    for path, cfg in configs.items():
        if 'kinetics400-pretrained' not in path:
            assert cfg.get('load_from') is None, path
            continue
        assert cfg.load_from.endswith(
            'tdn_imagenet-pretrained-r50_8xb16-5x1x16-100e_kinetics400-rgb.pth')
        assert cfg.load_from_allow_mismatch == ['cls_head']
        assert cfg.model.backbone.pretrained is None
        assert cfg.model.backbone.num_segments == 16


def test_finetuning_optimizer_covers_every_parameter(configs):
    """Every weight of TDN in the optimizer, all at the schedule's lr and
    decay (the release's main.py applies no per-group multipliers)."""
    from mmaction.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    import mmaction_tdx  # noqa: F401
    init_default_scope('mmaction')
    cfg = configs['configs/tdn/tdn_kinetics400-pretrained-r50_8xb8-5x1x16-'
                  '25e_ucf101-split1-rgb.py']
    model = MODELS.build(cfg.model)
    groups = build_optim_wrapper(
        model, cfg.optim_wrapper.to_dict()).optimizer.param_groups
    grouped = [id(p) for group in groups for p in group['params']]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    assert {(g['lr'], g['weight_decay']) for g in groups} == {(0.001, 5e-4)}
