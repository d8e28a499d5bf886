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


def _mmaction_registries_with_mmengine_parents():
    from mmaction import registry as mmaction_registry
    from mmengine.registry import Registry
    return sorted(
        (name, reg) for name, reg in vars(mmaction_registry).items()
        if isinstance(reg, Registry) and reg.scope == 'mmaction'
        and reg.parent is not None)


@pytest.mark.parametrize(
    'name', [name for name, _ in _mmaction_registries_with_mmengine_parents()])
def test_scope_switch_finds_mmaction_types_from_mmengine_root(name, caplog):
    """What MMEngine does for a ``_scope_='mmaction_tdx'`` dict built
    through one of its root registries (e.g. the Runner's ``DATASETS``):
    switch scope, search the tree; it must land on a registry that sees
    MMAction2's types, without the fallback warning."""
    import logging

    from mmaction import registry as mmaction_registry
    from mmengine.logging import MMLogger
    parent = getattr(mmaction_registry, name)
    root = parent.parent
    assert root.scope == 'mmengine'
    logger = MMLogger.get_current_instance()
    logger.propagate = True
    with caplog.at_level(logging.WARNING, logger=logger.name):
        with root.switch_scope_and_registry('mmaction_tdx') as registry:
            assert registry.scope == 'mmaction_tdx'
            for key, cls in parent.module_dict.items():
                assert registry.get(key) is cls, key
    assert 'Failed to search registry' not in caplog.text
