# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Interpreter-start hook: ``mmaction_tdx::`` config paths for every tool.

Run from ``mmaction_tdx*.pth`` in site-packages. It imports nothing heavy:
it only waits for ``mmengine.config.utils`` to be imported and then adds
``mmaction_tdx`` to its ``MODULE2PACKAGE`` table, so that a config with
``_base_ = ['mmaction_tdx::...']`` loads in MMAction2's own ``tools/train.py``
and in ``mim train mmaction2 ...``, which read the config before any
``custom_imports``. See ``mmaction_tdx/compat/mmengine_config_scope.py``.
"""
import importlib.abc
import importlib.machinery
import sys

TARGET = 'mmengine.config.utils'
PACKAGE = 'mmaction_tdx'


class _ConfigScopeFinder(importlib.abc.MetaPathFinder):

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        upstream_exec = spec.loader.exec_module

        def exec_module(module):
            upstream_exec(module)
            table = getattr(module, 'MODULE2PACKAGE', None)
            if isinstance(table, dict):
                table.setdefault(PACKAGE, PACKAGE)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    if TARGET in sys.modules:
        table = getattr(sys.modules[TARGET], 'MODULE2PACKAGE', None)
        if isinstance(table, dict):
            table.setdefault(PACKAGE, PACKAGE)
        return
    if not any(isinstance(f, _ConfigScopeFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _ConfigScopeFinder())


install()
