# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The wheel as a user gets it: built from the checkout, installed into a
fresh environment, used from an empty directory.

The environment is a new venv whose only addition is the wheel; the
dependencies (torch, mmengine, mmcv, mmaction2, openmim, ...) are the
project venv's, made visible by one ``.pth`` line, so nothing is
downloaded and no second torch is installed. Every check runs in a fresh
interpreter of that venv with the empty directory as working directory,
so neither the checkout nor its develop-style registration can stand in
for the installed package.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import types
import zipfile

import pytest
import yaml
from conftest import REPO_ROOT

from mmaction_tdx.datasets.synthetic_motion import (
    SyntheticMotionSpec,
    generate,
)

TDRL = 'quickstart/tdrl_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py'
METAFILES = ('configs/tdn/metafile.yml', 'configs/tdrl/metafile.yml')
PTH = 'mmaction_tdx-config-scope.pth'


def _run(cmd, cwd, timeout=600, env=None, stdout_only=False):
    result = subprocess.run([str(c) for c in cmd], cwd=str(cwd),
                            capture_output=True, text=True, timeout=timeout,
                            env=env)
    assert result.returncode == 0, (
        f'{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}')
    return result.stdout if stdout_only else result.stdout + result.stderr


# Not in a clean clone (see .gitignore); used where git is unavailable.
UNTRACKED = ('.git', '.venv', '.mim', '*.egg-info', 'build', 'dist',
             '__pycache__', '*.pyc', 'work_dirs', '*.pth',
             '.pytest_cache', '.ruff_cache', '_build')


def _copy_checkout(dst):
    """The files a clean clone of the working tree has (tracked, plus new
    files not ignored), without .venv, build output or mmaction_tdx/.mim."""
    try:
        listed = subprocess.run(
            ['git', 'ls-files', '-z', '--cached', '--others',
             '--exclude-standard'], cwd=REPO_ROOT, capture_output=True,
            check=True).stdout.decode().split('\0')
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO_ROOT, dst,
                        ignore=shutil.ignore_patterns(*UNTRACKED))
        return
    for rel in filter(None, listed):
        src = osp.join(REPO_ROOT, rel)
        if osp.isfile(src):  # tracked files deleted in the work tree: gone
            os.makedirs(osp.dirname(osp.join(dst, rel)), exist_ok=True)
            shutil.copy2(src, osp.join(dst, rel))


def _user_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV')}
    env['OMP_NUM_THREADS'] = '1'
    return env


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """Build the wheel, install it into a fresh venv; the venv's python,
    site-packages, wheel path and an empty working directory."""
    root = tmp_path_factory.mktemp('wheel')
    src, dist, venv = root / 'src', root / 'dist', root / 'venv'
    _copy_checkout(str(src))
    # No build isolation: setuptools of the project venv builds it, offline.
    _run([sys.executable, '-m', 'pip', 'wheel', src, '--no-deps',
          '--no-build-isolation', '--no-index', '-w', dist], cwd=root)
    (wheel, ) = dist.glob('mmaction_tdx-*.whl')
    _run([sys.executable, '-m', 'venv', '--without-pip', venv], cwd=root)
    python = venv / 'bin' / 'python'
    site = _run([python, '-c', 'import sysconfig; '
                 'print(sysconfig.get_paths()["purelib"])'], cwd=root,
                stdout_only=True).strip()
    ours = sysconfig.get_paths()
    deps = sorted({ours['purelib'], ours['platlib']})
    # Plain path lines: the project venv's own .pth files (its develop
    # registration of the checkout) are not processed.
    with open(osp.join(site, '_project_venv_deps.pth'), 'w') as f:
        f.write('\n'.join(deps) + '\n')
    # pip comes from the project venv too, and installs into this venv.
    _run([python, '-m', 'pip', 'install', '--no-deps', '--no-index', wheel],
         cwd=root, env=_user_env())
    empty = root / 'empty'
    empty.mkdir()
    return types.SimpleNamespace(python=python, site=site, wheel=wheel,
                                 cwd=empty, deps=deps)


def user_python(installed, code, timeout=600):
    """Run ``code`` as a user would; its standard output."""
    return _run([installed.python, '-c', textwrap.dedent(code)],
                cwd=installed.cwd, timeout=timeout, env=_user_env(),
                stdout_only=True)


def test_wheel_carries_the_mim_files_and_the_start_up_hook(installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        pth = wheel.read(PTH).decode()
    mim = 'mmaction_tdx/.mim/'
    configs = {
        osp.relpath(osp.join(d, f), REPO_ROOT)
        for d, _, files in os.walk(osp.join(REPO_ROOT, 'configs'))
        for f in files if f.endswith(('.py', '.yml', '.md'))
    }
    assert configs and {mim + c for c in configs} <= names
    assert {mim + 'model-index.yml', mim + 'tools/train.py',
            mim + 'tools/test.py'} <= names
    assert '_mmaction_tdx_config_scope.py' in names
    assert pth == 'import _mmaction_tdx_config_scope\n'
    assert not any(n.startswith(('tests/', 'docs/', 'mmaction_tdx/tests'))
                   for n in names)
    assert not any('__pycache__' in n for n in names)


def test_library_holds_no_developer_tooling(installed):
    """Benchmarks, the paper-table check and its FLOPs counting live in
    tools/ (shipped under .mim/tools like MMAction2's), not in the
    importable package."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
    library = [n for n in names if n.startswith('mmaction_tdx/')
               and not n.startswith('mmaction_tdx/.mim/')]
    assert library
    tooling = [n for n in library
               if any(word in n for word in ('benchmark', 'paper_table',
                                             'flops'))]
    assert not tooling, tooling
    assert 'mmaction_tdx/.mim/tools/analysis/flops.py' in names


def test_import_from_an_empty_directory(installed):
    output = user_python(installed, '''
    import sys
    hooked = '_mmaction_tdx_config_scope' in sys.modules
    import mmaction_tdx, torch
    print(hooked, mmaction_tdx.__file__, torch.__file__)
    ''')
    hooked, package, torch_file = output.strip().splitlines()[-1].split()
    assert hooked == 'True'  # the .pth ran at interpreter start
    assert package == osp.join(installed.site, 'mmaction_tdx', '__init__.py')
    # torch is the project venv's: no second copy was installed.
    assert any(torch_file.startswith(d) for d in installed.deps)
    assert not osp.exists(osp.join(installed.site, 'torch'))
    assert 'No broken requirements' in _run(
        [installed.python, '-m', 'pip', 'check'], cwd=installed.cwd,
        env=_user_env())


def test_tdn_config_resolves_through_the_package_scope(installed, tmp_path):
    """Before ``import mmaction_tdx`` (as in MMAction2's tools/train.py),
    from the installed ``.mim/configs``."""
    with open(osp.join(REPO_ROOT, METAFILES[0])) as f:
        config = yaml.safe_load(f)['Models'][0]['Config']
    name = osp.relpath(config, 'configs')
    assert name.startswith('tdn/')
    user_cfg = tmp_path / 'my_tdn.py'
    user_cfg.write_text(f"_base_ = ['mmaction_tdx::{name}']\n"
                        'model = dict(cls_head=dict(num_classes=7))\n')
    output = user_python(installed, f'''
    import sys
    from mmengine.config import Config
    from mmengine.hub import get_config
    cfg = Config.fromfile({str(user_cfg)!r}, import_custom_modules=False)
    assert 'mmaction_tdx' not in sys.modules
    direct = get_config('mmaction_tdx::{name}')  # by its metafile entry
    print(cfg.model.backbone.type, cfg.model.cls_head.num_classes,
          direct.filename)
    ''')
    backbone, classes, filename = output.strip().splitlines()[-1].split()
    assert (backbone, classes) == ('ResNetTDN', '7')
    assert filename == osp.join(installed.site, 'mmaction_tdx', '.mim',
                                'configs', name)


def test_mim_search_lists_every_model(installed):
    output = _run([installed.python, '-m', 'mim', 'search', 'mmaction_tdx'],
                  cwd=installed.cwd, env=_user_env())
    listed = {line.split(':', 1)[1].strip() for line in output.splitlines()
              if line.startswith('config id:')}
    names = set()
    for metafile in METAFILES:
        with open(osp.join(REPO_ROOT, metafile)) as f:
            names |= {m['Name'] for m in yaml.safe_load(f)['Models']}
    assert len(names) == 91
    assert listed == names


@pytest.mark.slow
def test_mim_train_one_iteration_on_a_user_config(installed, tmp_path):
    """``mim train mmaction_tdx`` runs the installed .mim/tools/train.py on
    a user config whose base is ours through the package scope: one
    iteration of TDRL on generated synthetic clips, then validation."""
    data = tmp_path / 'data'
    generate(SyntheticMotionSpec(root=str(data), num_train_per_class=1,
                                 num_val_per_class=1, frames=12, size=64),
             show_progress=False)
    user_cfg = tmp_path / 'my_tdrl.py'
    user_cfg.write_text(f"_base_ = ['mmaction_tdx::{TDRL}']\n"
                        'model = dict(cls_head=dict(dropout_ratio=0.3))\n')
    options = ['train_cfg.max_epochs=1', 'train_dataloader.batch_size=2']
    for split, loader in (('train', 'train_dataloader'),
                          ('val', 'val_dataloader'),
                          ('val', 'test_dataloader')):
        options += [
            f'{loader}.dataset.ann_file={data}/{split}_list.txt',
            f'{loader}.dataset.data_prefix.video={data}/videos',
            f'{loader}.num_workers=0', f'{loader}.persistent_workers=False',
            f'{loader}.dataset.indices=2'
        ]
    work_dir = tmp_path / 'work'
    output = _run([installed.python, '-m', 'mim', 'train', 'mmaction_tdx',
                   user_cfg, '--work-dir', work_dir, '--cfg-options',
                   *options], cwd=installed.cwd, env=_user_env(),
                  timeout=900)
    assert 'Epoch(train) [1][1/1]' in output, output[-3000:]
    assert 'loss_td' in output  # TDRL's Temporal Diversity loss ran
    assert 'acc/top1' in output
    # Every type dict of the base carries _scope_='mmaction_tdx': each
    # registry lookup found our scope (no fallback).
    assert 'Failed to search registry' not in output
    assert osp.isfile(work_dir / 'epoch_1.pth')
