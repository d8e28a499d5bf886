# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Shared pieces of the deployment tests: the quick-start models (R18,
T=4, 48 px) and the export tool loaded from tools/deployment."""
import importlib.util
import os.path as osp

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
QUICKSTART = {
    name: osp.join(REPO, 'configs', 'quickstart', config)
    for name, config in (
        ('tsn', 'tsn_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py'),
        ('tsm', 'tsm_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py'),
        ('tdn', 'tdn_r18_1xb16-5x1x4-12e_synthetic-motion-rgb.py'),
        ('tdrl', 'tdrl_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py'),
    )
}


def load_tool(name='export_onnx'):
    path = osp.join(REPO, 'tools', 'deployment', name + '.py')
    spec = importlib.util.spec_from_file_location(f'_{name}_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_quickstart(name, seed=0, **head):
    """A quick-start recognizer (random weights) and its inference config.
    """
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    from mmaction_tdx.apis import load_config
    cfg = load_config(QUICKSTART[name])
    cfg.model.cls_head.update(head)
    init_default_scope('mmaction')
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.cfg = cfg
    return model


def frames(shape, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, *shape, generator=gen) * 255
