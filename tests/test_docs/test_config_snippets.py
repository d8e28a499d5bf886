# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The config snippets of README.md and docs/*.md load as written from a
folder outside the repository (``mmaction_tdx::`` bases), and the runtime
base they inherit is neutral (no CPU choices)."""
import glob
import os.path as osp
import re

import pytest
from conftest import REPO_ROOT
from mmengine.config import Config

PAGES = ['README.md'] + sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'docs', '*.md')))


def snippets():
    found = []
    for page in PAGES:
        with open(osp.join(REPO_ROOT, page)) as f:
            text = f.read()
        for block in re.findall(r'```python\n(.*?)```', text, re.S):
            if re.search(r"^_base_ = .*mmaction_tdx::", block, re.M | re.S):
                found.append((page, block))
    return found


SNIPPETS = snippets()
# Every `mmaction_tdx::...py` a page names (prose included).
SCOPED = sorted({(page, path) for page in PAGES for path in re.findall(
    r'mmaction_tdx::([\w/.-]+\.py)',
    open(osp.join(REPO_ROOT, page)).read())})


def test_the_pages_show_configs_on_our_bases():
    pages = {page for page, _ in SNIPPETS}
    assert {'README.md', 'docs/get_started.md',
            'docs/own_dataset.md'} <= pages
    for page, block in SNIPPETS:
        assert 'quickstart' not in block, page
        if '_base_/datasets/' in block:  # a full config, not a model
            assert "'mmaction_tdx::_base_/default_runtime.py'" in block, page


@pytest.mark.parametrize('page,block', SNIPPETS,
                         ids=[page for page, _ in SNIPPETS])
def test_snippet_loads_from_any_folder(page, block, tmp_path):
    path = tmp_path / 'my_config.py'
    path.write_text(block)
    cfg = Config.fromfile(str(path))
    assert cfg.model.type == 'SegmentRecognizer2D'
    if '_base_/datasets/' not in block:
        return  # a model to build or inspect
    # the neutral runtime: MMAction2's GPU default, every checkpoint kept
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'max_keep_ckpts' not in cfg.default_hooks.checkpoint
    assert cfg.custom_imports.imports == ['mmaction_tdx']


@pytest.mark.parametrize('page,base', SCOPED,
                         ids=[f'{p}:{b}' for p, b in SCOPED])
def test_every_named_base_resolves(page, base, tmp_path):
    path = tmp_path / 'child.py'
    path.write_text(f"_base_ = 'mmaction_tdx::{base}'\n")
    Config.fromfile(str(path))


def test_runtime_base_is_neutral_and_the_quick_start_keeps_its_own():
    base = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/_base_/default_runtime.py'))
    assert base.env_cfg.dist_cfg.backend == 'nccl'
    assert 'max_keep_ckpts' not in base.default_hooks.checkpoint
    assert base.default_hooks.checkpoint.interval == 1
    for key in ('train_cfg', 'param_scheduler', 'optim_wrapper'):
        assert key not in base, key
    quick = Config.fromfile(osp.join(
        REPO_ROOT, 'configs/quickstart/'
        'tsn_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py'))
    assert quick.env_cfg.dist_cfg.backend == 'gloo'
    assert quick.default_hooks.checkpoint.max_keep_ckpts == 1
