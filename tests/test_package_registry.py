# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""A user config on top of a model-only base loaded through the package
scope (``mmaction_tdx::_base_/models/...``) builds: its type dicts carry
``_scope_='mmaction_tdx'``, which ``mmaction_tdx.registry`` resolves to
MMAction2's registries."""
import pytest
from mmengine import Config


@pytest.mark.parametrize('base', ['tdn_r50', 'tdrl_r50'])
def test_model_only_base_through_the_package_scope(tmp_path, base):
    from mmaction.apis import init_recognizer
    config = tmp_path / 'mine.py'
    config.write_text(
        f"_base_ = ['mmaction_tdx::_base_/models/{base}.py']\n"
        'model = dict(backbone=dict(depth=18, num_segments=2),\n'
        '             cls_head=dict(in_channels=512, num_classes=3))\n')
    cfg = Config.fromfile(str(config))
    assert cfg.model.get('_scope_') == 'mmaction_tdx'
    model = init_recognizer(cfg, None, device='cpu')
    assert type(model).__name__ == 'SegmentRecognizer2D'
    assert type(model.data_preprocessor).__name__ == \
        'ActionDataPreprocessor'
    assert model.cls_head.num_classes == 3
