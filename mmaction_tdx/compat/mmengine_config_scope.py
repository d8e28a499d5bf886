# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Let ``mmaction_tdx::`` config paths resolve in mmengine 0.10.7.

Upstream limitation (mmengine 0.10.7, ``mmengine/config/utils.py``):
``_get_package_and_cfg_path`` accepts ``package::path`` only for packages
listed in the hard-coded ``MODULE2PACKAGE`` table (mmdet, mmaction, ...), so
``_base_ = ['mmaction_tdx::quickstart/<name>.py']`` fails with
"mmengine does not support to load mmaction_tdx config." even though our
configs are installed under ``mmaction_tdx/.mim/configs`` the OpenMMLab way.

The fix adds our entry to that table. Config files are parsed before their
``custom_imports`` run, so the entry must exist before a user's config is
read: our tools import ``mmaction_tdx`` first (which runs this fix), and for
tools that do not (MMAction2's own ``tools/train.py``, ``mim train mmaction2
...``) installing the package puts ``mmaction_tdx-config-scope.pth`` into
site-packages (``tools/install/develop.py`` writes the same line into
``mmaction_tdx-develop.pth``), which imports the start-up hook
``_mmaction_tdx_config_scope`` at interpreter start (see its docstring for
why no lighter mechanism exists in mmengine 0.10.7). Where mmengine already
knows the package, nothing changes.
"""
PACKAGE = 'mmaction_tdx'


def _table():
    from mmengine.config import utils as config_utils
    return config_utils.MODULE2PACKAGE


def is_needed() -> bool:
    return PACKAGE not in _table()


def apply() -> bool:
    """Register ``mmaction_tdx`` as an mmengine config scope.

    Returns:
        bool: True if the entry is present after the call.
    """
    _table().setdefault(PACKAGE, PACKAGE)
    return True
