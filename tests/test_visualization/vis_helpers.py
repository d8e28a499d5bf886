# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Shared by the visualisation tests: run a tool in-process, check a PNG."""
import importlib.util
import os.path as osp

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODELS = osp.join(ROOT, 'configs', '_base_', 'models')
# Small models: ResNet-18, 4 segments (dict for the API, list for a CLI).
R18_OPTIONS = {
    'model.backbone.depth': 18,
    'model.cls_head.in_channels': 512,
    'model.backbone.num_segments': 4,
}
R18 = [f'{key}={value}' for key, value in R18_OPTIONS.items()]


def run_tool(relpath: str, *argv) -> int:
    """``main(argv)`` of the tool at ``ROOT/relpath``."""
    path = osp.join(ROOT, relpath)
    spec = importlib.util.spec_from_file_location(
        osp.splitext(osp.basename(path))[0], path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.main([str(a) for a in argv])


def assert_nontrivial_png(path, min_size=(200, 300)) -> np.ndarray:
    """The PNG exists, is at least ``min_size`` (h, w) and holds a picture
    (many colours, not one flat tone); returns it as ``(H, W, C)``."""
    import matplotlib.image as mpimg
    assert osp.isfile(path), f'{path} was not written'
    image = mpimg.imread(path)
    assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1]
    rgb = (image[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert rgb.std() > 20
    assert len(np.unique(rgb, axis=0)) > 500
    return image
