# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Real data never stops a run: every config trains, validates and tests
through the robust datasets with the broken-sample report, by inheritance;
the stock quick-start config trains through broken videos; a missing
dataset gets an error that says how to get it."""
import glob
import os.path as osp
import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT
from mmengine.config import Config

sys.path.insert(0, osp.join(REPO_ROOT, 'tests', 'test_datasets'))
from bad_video_files import (  # noqa: E402
    BROKEN,
    SHORT,
    make_bad_video_set,
    write_video_list,
)

CONFIGS = sorted(
    osp.relpath(path, REPO_ROOT)
    for path in glob.glob(f'{REPO_ROOT}/configs/**/*.py', recursive=True)
    if '_base_' not in osp.relpath(path, REPO_ROOT).split(osp.sep))
ROBUST_TYPES = ('RobustVideoDataset', 'RobustRawframeDataset')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
TSN = 'configs/quickstart/tsn_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py'
MIM = osp.join(osp.dirname(sys.executable), 'mim')


def leaf_datasets(dataset):
    """The datasets that load samples, inside wrappers."""
    inner = [dataset.get('dataset')] + list(dataset.get('datasets') or [])
    inner = [d for d in inner if d is not None]
    if not inner:
        return [dataset]
    return [leaf for d in inner for leaf in leaf_datasets(d)]


def report_hooks(cfg):
    hooks = list((cfg.get('default_hooks') or {}).values()) + list(
        cfg.get('custom_hooks') or [])
    return [
        hook for hook in hooks
        if hook and hook.get('type') == 'BrokenSampleReportHook'
    ]


def test_there_are_configs():
    # quick start, TDN and TDRL paper rows and ablations, fine-tunes
    assert len(CONFIGS) >= 60
    assert any('ucf101' in path for path in CONFIGS)
    assert any('hmdb51' in path for path in CONFIGS)
    assert any(path.startswith('configs/quickstart/') for path in CONFIGS)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_uses_robust_datasets_and_the_report_hook(path):
    cfg = Config.fromfile(osp.join(REPO_ROOT, path))

    for loader in LOADERS:
        datasets = leaf_datasets(cfg[loader]['dataset'])
        for dataset in datasets:
            assert dataset['type'] in ROBUST_TYPES, (loader, dataset['type'])
    assert len(report_hooks(cfg)) == 1


@pytest.mark.parametrize('path', CONFIGS)
def test_config_inherits_the_dataset_type_instead_of_restating_it(path):
    """Only configs/_base_/datasets/ names dataset types, so one change
    there reaches every config."""
    with open(osp.join(REPO_ROOT, path)) as f:
        text = f.read()
    assert not re.search(r'\b(Robust)?(Video|Rawframe)Dataset\b|dataset_type',
                         text)


def run(cmd, cwd=REPO_ROOT, timeout=900):
    return subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            **__import__('os').environ, 'OMP_NUM_THREADS': '1'
        })


@pytest.fixture(scope='module')
def bad_list(tmp_path_factory):
    """76 good clips (64x64, 16 frames; the quick-start crops 48), a
    3-frame clip and 4 broken files: 4 of 81 broken is 4.9 %, within the
    default max_broken_fraction of 5 %."""
    tmp = tmp_path_factory.mktemp('bad_quickstart')
    root = tmp / 'videos'
    root.mkdir()
    names = make_bad_video_set(
        str(root), num_good=76, good_frames=16, size=(64, 64))
    order = names['good'][:30] + names['broken'][:2] + names['short'] + \
        names['good'][30:] + names['broken'][2:]
    ann = write_video_list(str(tmp / 'list.txt'), order, num_classes=10)
    return dict(root=str(root), ann=ann, order=order)


@pytest.mark.slow
def test_stock_quickstart_config_trains_and_validates_through_broken_videos(
        bad_list, tmp_path):
    work_dir = str(tmp_path / 'work')
    options = ['train_cfg.max_epochs=1']
    for loader in LOADERS:
        options += [
            f'{loader}.dataset.ann_file={bad_list["ann"]}',
            f'{loader}.dataset.data_prefix.video={bad_list["root"]}',
            f'{loader}.batch_size=27'
        ]

    done = run([
        sys.executable, 'tools/train.py', TSN, '--work-dir', work_dir,
        '--cfg-options', *options
    ])

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    paths = {name: osp.join(bad_list['root'], name) for name in BROKEN}
    # Each broken file is named once by train and once by val, with why.
    reasons = {
        'missing.mp4': 'not found',
        'empty.mp4': 'empty file (0 bytes)',
        'truncated.mp4': 'not a decodable video',
        'not_a_video.mp4': 'not a decodable video',
    }
    for name, path in paths.items():
        skipped = re.findall(
            rf'Skipped broken sample {re.escape(path)} \(([^;]*);', output)
        assert len(skipped) == 2, name
        assert all(reason.startswith(reasons[name])
                   for reason in skipped), (name, skipped)
    assert osp.join(bad_list['root'], SHORT) not in output
    assert re.search(
        r'Broken samples, train epoch 1: \d+ failed loads, each replaced by '
        r'another sample; 4 distinct broken of 81 so far', output)
    # Validation leaves them out of the accuracy and says so.
    left_out = re.search(
        r'val \(epoch 1, iter 3\): AccMetric over 77 of 81 listed videos; '
        r'4 left out: (.*)', output)
    assert left_out, output[-5000:]
    for path in paths.values():
        assert path + ' (' in left_out.group(1)
    assert 'acc/top1' in output
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))


def check_missing_data_error(done, splits, own_traceback=False):
    assert done.returncode != 0
    message = done.stderr
    if not own_traceback:  # mim prints its own when the script fails
        assert 'Traceback' not in message
    assert 'The data of this config is missing' in message
    for loader, name in splits:
        assert f'  {loader}: data/synthetic_motion/{name}' in message
    assert ('run `python tools/data/generate_synthetic_motion.py '
            'data/synthetic_motion`, or `make demo`') in message
    assert osp.isfile(
        osp.join(REPO_ROOT, 'tools', 'data', 'generate_synthetic_motion.py'))


@pytest.mark.parametrize('entry', ['tools/train.py', 'mim train'])
def test_training_before_the_data_exists_says_how_to_generate_it(
        tmp_path, entry):
    config = osp.join(REPO_ROOT, TSN)
    if entry == 'tools/train.py':
        cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py')]
    else:
        cmd = [MIM, 'train', 'mmaction_tdx']

    done = run(cmd + [config, '--work-dir', str(tmp_path / 'work')],
               cwd=str(tmp_path))

    check_missing_data_error(
        done, [('train_dataloader', 'train_list.txt'),
               ('val_dataloader', 'val_list.txt')],
        own_traceback=entry == 'mim train')


def test_testing_before_the_data_exists_says_how_to_generate_it(tmp_path):
    done = run([
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'test.py'),
        osp.join(REPO_ROOT, TSN), 'no_checkpoint.pth', '--work-dir',
        str(tmp_path / 'work')
    ],
               cwd=str(tmp_path))

    check_missing_data_error(done, [('test_dataloader', 'val_list.txt')])
