# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The stock entry points on our configs: mim train/test, resume, and
``mmaction_tdx::`` bases, each in a fresh process as a user runs them."""
import glob
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from mmaction_tdx.datasets.synthetic_motion import (
    SyntheticMotionSpec,
    generate,
)

TSN = 'configs/quickstart/tsn_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py'
MIM = osp.join(osp.dirname(sys.executable), 'mim')


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    generate(
        SyntheticMotionSpec(
            root=str(root),
            num_train_per_class=1,
            num_val_per_class=1,
            frames=12,
            size=64),
        show_progress=False)
    return str(root)


def tiny_options(data_root, epochs=1):
    options = [f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1',
               'default_hooks.checkpoint.interval=1',
               'default_hooks.logger.interval=1',
               'train_dataloader.batch_size=4']
    for split, loader in (('train', 'train_dataloader'),
                          ('val', 'val_dataloader'),
                          ('val', 'test_dataloader')):
        options += [
            f'{loader}.dataset.ann_file={data_root}/{split}_list.txt',
            f'{loader}.dataset.data_prefix.video={data_root}/videos',
            f'{loader}.num_workers=0', f'{loader}.persistent_workers=False',
            f'{loader}.dataset.indices=8'
        ]
    return options


def run(cmd, timeout=600):
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=timeout,
                            env={**__import__('os').environ,
                                 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[
        -3000:]
    return result.stdout + result.stderr


def test_mim_train_test_and_resume(tiny_data, tmp_path):
    work_dir = str(tmp_path / 'work')
    run([MIM, 'train', 'mmaction_tdx', TSN, '--work-dir', work_dir,
         '--cfg-options', *tiny_options(tiny_data)])
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(checkpoint)
    # mim test loads the checkpoint MMEngine wrote (torch weights_only path).
    output = run([MIM, 'test', 'mmaction_tdx', TSN, '--checkpoint',
                  checkpoint, '--work-dir', work_dir, '--cfg-options',
                  *tiny_options(tiny_data)])
    assert 'acc/top1' in output
    # --resume continues the run from its last checkpoint.
    output = run([sys.executable, 'tools/train.py', TSN, '--work-dir',
                  work_dir, '--resume', '--cfg-options',
                  *tiny_options(tiny_data, epochs=2)])
    assert 'resumed epoch: 1' in output
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))


def test_mim_train_mmaction2_with_our_config(tiny_data, tmp_path):
    work_dir = str(tmp_path / 'work')
    run([MIM, 'train', 'mmaction2', TSN, '--work-dir', work_dir,
         '--cfg-options', *tiny_options(tiny_data)])
    assert glob.glob(osp.join(work_dir, 'epoch_1.pth'))


def test_user_config_inherits_through_package_scope(tmp_path,
                                                    python_runner):
    """``mmaction_tdx::`` bases resolve even before mmaction_tdx is
    imported (as in MMAction2's own tools), and ``mmaction::`` bases work
    inside ours."""
    user_cfg = tmp_path / 'my_tsn.py'
    user_cfg.write_text(
        "_base_ = ['mmaction_tdx::quickstart/" + osp.basename(TSN) + "']\n"
        'model = dict(cls_head=dict(dropout_ratio=0.3))\n')
    result = python_runner(f'''
    import sys
    from mmengine.config import Config
    cfg = Config.fromfile({str(user_cfg)!r}, import_custom_modules=False)
    assert 'mmaction_tdx' not in sys.modules
    print(cfg.model.type, cfg.model.backbone.type,
          cfg.model.cls_head.dropout_ratio, cfg.custom_imports.imports,
          cfg.default_scope)
    ''')
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        'Recognizer2D', 'ResNet', '0.3', "['mmaction_tdx']", 'mmaction'
    ]


def test_mim_packaging_layout():
    import mmaction_tdx
    mim_root = osp.join(osp.dirname(mmaction_tdx.__file__), '.mim')
    for name in ('configs', 'tools', 'model-index.yml'):
        assert osp.exists(osp.join(mim_root, name)), name
    assert osp.isfile(osp.join(mim_root, 'tools', 'train.py'))
    assert shutil.which('mim') or osp.isfile(MIM)


def test_ctrl_c_prints_one_line_with_the_resume_command(tiny_data, tmp_path):
    """SIGINT to the process group (what Ctrl-C in a terminal sends) in
    epoch 2: one line naming the checkpoint and the command, exit 130 (not
    a screen of tracebacks). The run has more epochs than it can finish
    before the signal lands, however late a loaded machine delivers it
    (with 2 epochs, a CI run once finished first and exited 0)."""
    import os
    import shlex
    import signal
    work_dir = str(tmp_path / 'work')
    cmd = [sys.executable, 'tools/train.py', TSN, '--work-dir', work_dir,
           '--no-validate', '--cfg-options',
           *tiny_options(tiny_data, epochs=50)]
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
        # As in a terminal: a suite started in the background (`make
        # test &`, nohup) ignores SIGINT, and children inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, 'OMP_NUM_THREADS': '1'})
    try:
        for line in proc.stdout:
            # MMEngine pads the epoch to the width of max_epochs.
            if re.search(r'Epoch\(train\) *\[ *2\]\[ *1/', line):
                os.killpg(proc.pid, signal.SIGINT)
                break
        else:
            pytest.fail('training ended before epoch 2')
        after = proc.stdout.read().splitlines()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, after
    assert len(after) == 1, '\n'.join(after)
    # Epoch 2 when the signal is on time; a later one on a slow machine,
    # and then the checkpoint named is that epoch's predecessor.
    match = re.match(r'Interrupted \(epoch (\d+)', after[0])
    assert match and int(match.group(1)) >= 2, after[0]
    last_done = int(match.group(1)) - 1
    assert f'epoch_{last_done}.pth' in after[0]
    assert os.path.isfile(os.path.join(work_dir, f'epoch_{last_done}.pth'))
    # the same command with --resume (which test_mim_train_test_and_resume
    # runs): auto-resume from the work dir's latest checkpoint
    command = shlex.split(after[0].split(' with: ', 1)[1])
    assert command == ['python', *cmd[1:], '--resume']
