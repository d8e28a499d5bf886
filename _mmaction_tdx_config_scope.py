# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Interpreter-start hook: ``mmaction_tdx::`` config paths for every tool.

Why a start-up hook: mmengine 0.10.7 accepts ``package::path`` in
``_base_`` (``mmengine/config/utils.py``, ``_get_package_and_cfg_path``)
only for the packages of its hard-coded ``MODULE2PACKAGE`` table; it offers
no entry point or metadata lookup to extend it. MMAction2's own
``tools/train.py`` (run by ``mim train mmaction2 ...``) calls
``Config.fromfile`` before any ``custom_imports``, and imports nothing of
ours, so ``import mmaction_tdx`` (which adds the entry too, see
:mod:`mmaction_tdx.compat.mmengine_config_scope`) comes too late there.
Without the hook, ``_base_ = ['mmaction_tdx::...']`` works only in tools
that import ``mmaction_tdx`` first (ours, ``mim train mmaction_tdx``).

How: installing the package puts ``mmaction_tdx-config-scope.pth`` (written
by ``setup.py``; ``tools/install/develop.py`` writes the same line into its
``mmaction_tdx-develop.pth``) into site-packages; it imports this module at
interpreter start. The module imports nothing but :mod:`sys` and puts a
finder on ``sys.meta_path`` that acts once, when ``mmengine.config.utils``
is imported: it adds ``mmaction_tdx`` to ``MODULE2PACKAGE`` right after the
module has run. Every other import passes it with one string comparison.
"""
import sys

TARGET = 'mmengine.config.utils'
PACKAGE = 'mmaction_tdx'


def _register(module) -> None:
    table = getattr(module, 'MODULE2PACKAGE', None)
    if isinstance(table, dict):
        table.setdefault(PACKAGE, PACKAGE)


def _find_with_the_others(finder, fullname, path, target):
    """The spec the other meta path finders (the standard ones) return."""
    for other in sys.meta_path:
        find_spec = getattr(other, 'find_spec', None)
        if other is finder or find_spec is None:
            continue
        spec = find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


class ConfigScopeFinder:
    """Meta path finder for :data:`TARGET` only. No ``importlib.abc`` base
    class and no ``importlib.machinery``: importing those at every
    interpreter start would cost more than the rest of this hook."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        spec = _find_with_the_others(self, fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        upstream_exec = spec.loader.exec_module

        def exec_module(module):
            upstream_exec(module)
            _register(module)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Register now if mmengine's table is loaded, else on its import."""
    if TARGET in sys.modules:
        _register(sys.modules[TARGET])
    elif not any(isinstance(f, ConfigScopeFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, ConfigScopeFinder())


install()
