# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The paper configs through mim, as a user runs them (fresh processes)."""
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import pytest
import yaml
from conftest import REPO_ROOT

from mmaction_tdx.datasets.synthetic_motion import (
    SyntheticMotionSpec,
    render_clip,
)

MIM = osp.join(osp.dirname(sys.executable), 'mim')
TDN_SSV1 = ('configs/tdn/'
            'tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py')


def run(cmd, timeout=600):
    result = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, (result.stdout[-3000:] +
                                    result.stderr[-3000:])
    return result.stdout + result.stderr


def test_mim_search_lists_every_paper_row():
    output = run([MIM, 'search', 'mmaction_tdx'])
    listed = {line.split(':', 1)[1].strip() for line in output.splitlines()
              if line.startswith('config id:')}
    names = set()
    for metafile in ('configs/tdn/metafile.yml', 'configs/tdrl/metafile.yml'):
        with open(osp.join(REPO_ROOT, metafile)) as f:
            names |= {model['Name'] for model in yaml.safe_load(f)['Models']}
    assert listed == names
    assert len(names) == 91
    # mim reads the metadata: e.g. the paper's table and FLOPs.
    assert re.search(r'paper_table +tdn table 2', output)


@pytest.fixture(scope='module')
def sth_rawframes(tmp_path_factory):
    """A two-video Something-Something V1 lookalike in MMAction2's layout:
    rawframes/<video>/00001.jpg..., lists "<video> <frames> <label>"."""
    root = str(tmp_path_factory.mktemp('sthv1'))
    spec = SyntheticMotionSpec(root=root, frames=12, size=64)
    for split in ('train', 'val'):
        lines = []
        for label in (0, 1):
            video = f'{split}_{label}'
            os.makedirs(osp.join(root, 'rawframes', video))
            frames = render_clip(spec, split, label, label)
            for index, frame in enumerate(frames, 1):
                cv2.imwrite(
                    osp.join(root, 'rawframes', video, f'{index:05}.jpg'),
                    frame)
            lines.append(f'{video} {len(frames)} {label}')
        with open(osp.join(root, f'{split}_list.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return root


@pytest.mark.slow
def test_mim_train_starts_a_paper_config(sth_rawframes, tmp_path):
    """`mim train mmaction_tdx <TDN Table 2 config>` trains unchanged; only
    the depth (ResNet-18, no ImageNet download), the data and the run
    length are overridden."""
    data = sth_rawframes
    options = [
        'model.backbone.depth=18', 'model.backbone.pretrained=None',
        'model.cls_head.in_channels=512', 'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1',
        # one epoch of a 60-epoch schedule, on purpose (ScheduleCheckHook)
        'default_hooks.schedule_check.cut_off=warn'
    ]
    for loader, split in (('train_dataloader', 'train'),
                          ('val_dataloader', 'val'),
                          ('test_dataloader', 'val')):
        options += [
            f'{loader}.batch_size=2',
            f'{loader}.dataset.ann_file={data}/{split}_list.txt',
            f'{loader}.dataset.data_prefix.img={data}/rawframes',
            f'{loader}.num_workers=0', f'{loader}.persistent_workers=False'
        ]
    work_dir = str(tmp_path / 'work')
    output = run([MIM, 'train', 'mmaction_tdx', TDN_SSV1, '--work-dir',
                  work_dir, '--cfg-options', *options])
    # One iteration of 2 videos x 8 segments x 5 frames, then validation.
    assert 'Epoch(train) [1][1/1]' in output
    assert 'loss_cls' in output
    assert 'acc/top1' in output
    # auto_scale_lr: lr 0.01 is for 64 videos per iteration.
    assert 'Scaling the original LR by 0.03125' in output
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))
