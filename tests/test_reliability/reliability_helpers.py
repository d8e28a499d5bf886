# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Shared pieces of the reliability tests: tiny models, the synthetic
dataset and configs that train in seconds on a CPU."""
import functools
import glob
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

import pytest
import torch
from mmengine.config import Config

from mmaction_tdx.datasets.synthetic_motion import (
    SyntheticMotionSpec,
    generate,
)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SIZE = 64  # frame size of the synthetic videos and of the model inputs


@pytest.fixture(autouse=True)
def single_thread():
    """Run in-process models on one thread, restored afterwards.

    The models are tiny, so a second thread gains nothing, while on a
    shared 2-core machine an OpenMP thread that waits for a busy core
    makes a test several times slower. Import it into a test module to
    apply it there.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def quickstart_config(model: str) -> str:
    """Absolute path of ``configs/quickstart/<model>_r18_*.py``."""
    found = sorted(
        glob.glob(osp.join(REPO_ROOT, 'configs', 'quickstart',
                           f'{model}_r18_*.py')))
    assert found, f'no quick-start config for {model}'
    return found[0]


@functools.lru_cache(maxsize=1)
def shipped_configs() -> Tuple[Tuple[str, Config], ...]:
    """``(path, config)`` of every config directly under
    ``configs/<group>/`` (quick-start, TDN, TDRL; not the ablations), parsed
    once per session. Do not modify the configs."""
    paths = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*.py')))
    return tuple((path, Config.fromfile(path)) for path in paths)


def make_synthetic_data(root: str) -> str:
    """A tiny real-mp4 dataset (20 train / 10 val videos, 16 frames)."""
    generate(
        SyntheticMotionSpec(
            root=root,
            num_train_per_class=2,
            num_val_per_class=1,
            frames=16,
            size=SIZE),
        show_progress=False)
    return root


def data_options(data_root: str, num_train: int,
                 batch_size: int = 2) -> Dict[str, object]:
    """Point all dataloaders of a quick-start config at ``data_root``,
    single-process, ``num_train`` training samples, no validation."""
    options: Dict[str, object] = {
        'train_dataloader.batch_size': batch_size,
        'train_dataloader.dataset.indices': num_train,
    }
    for split, loader in (('train', 'train_dataloader'),
                          ('val', 'val_dataloader'),
                          ('val', 'test_dataloader')):
        options.update({
            f'{loader}.dataset.ann_file': f'{data_root}/{split}_list.txt',
            f'{loader}.dataset.data_prefix.video': f'{data_root}/videos',
            f'{loader}.num_workers': 0,
            f'{loader}.persistent_workers': False,
        })
    return options


def cli_options(options: Dict[str, object]) -> List[str]:
    """``--cfg-options`` arguments for ``options``."""
    return [f'{key}={value}' for key, value in options.items()]


def write_config(path: str, base: str, body: str = '') -> str:
    """A config file inheriting ``base`` (absolute path) plus ``body``."""
    with open(path, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n{body}\n')
    return path


def run_tool(args: List[str], env: Optional[dict] = None,
             timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``args`` (a command) from the repository root, single-threaded
    BLAS/OpenMP so that runs are reproducible and share the CPU."""
    full_env = dict(os.environ)
    full_env.pop('MMACTION_TDX_SKIP_COMPAT', None)
    full_env['OMP_NUM_THREADS'] = '1'
    full_env.update(env or {})
    return subprocess.run(
        args,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout)


PYTHON = sys.executable
