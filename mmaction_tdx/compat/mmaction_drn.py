# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Stand-in for ``mmaction.models.localizers.drn``, absent in mmaction2 1.2.0.

Upstream defect (mmaction2 1.2.0, wheel and sdist): the folder
``mmaction/models/localizers/drn/`` has no ``__init__.py``, so setuptools'
``find_packages`` leaves it out of the distribution, while
``mmaction/models/localizers/__init__.py`` still does
``from .drn.drn import DRN``. As a result ``import mmaction.models`` raises
``ModuleNotFoundError`` and no registry lookup through ``mmaction.models``
works.

The fix registers a small import-time module under the missing name whose
``DRN`` raises a clear error when someone actually builds it. Nothing else of
MMAction2 is touched. When an installation does ship the real folder (a
source install, or a fixed release), :func:`apply` finds it and does nothing.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

MISSING_PACKAGE = 'mmaction.models.localizers.drn'
MISSING_MODULE = MISSING_PACKAGE + '.drn'


class MissingDRN:
    """Placeholder for DRN, whose source files are absent from this install."""

    def __init__(self, *args, **kwargs):
        raise ImportError(
            'DRN cannot be built: the mmaction2 1.2.0 wheel does not contain '
            '`mmaction/models/localizers/drn/` (the upstream folder lacks an '
            '`__init__.py`, so packaging drops it). Install mmaction2 from '
            'source (`pip install -e` of a clone) if you need DRN; '
            'mmaction_tdx only provides this placeholder so that '
            '`import mmaction.models` works.')


class _DRNStandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the two missing module names, and only those."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in (MISSING_PACKAGE, MISSING_MODULE):
            return None
        return importlib.machinery.ModuleSpec(
            fullname, self, is_package=(fullname == MISSING_PACKAGE))

    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        module.__doc__ = __doc__
        module.DRN = MissingDRN
        module.mmaction_tdx_stand_in = True


_FINDER = _DRNStandInFinder()


def real_drn_is_installed() -> bool:
    """Whether the installed mmaction2 ships its own ``localizers/drn``.

    Looks at the files rather than importing: importing any submodule of
    ``mmaction.models`` runs the failing ``localizers/__init__.py``.
    """
    spec = importlib.util.find_spec('mmaction')
    for location in (spec.submodule_search_locations or []):
        folder = os.path.join(location, 'models', 'localizers', 'drn')
        if os.path.isfile(os.path.join(folder, 'drn.py')):
            return True
    return False


def is_needed() -> bool:
    try:
        if importlib.util.find_spec('mmaction') is None:
            return False
    except ValueError:  # mmaction in sys.modules without a spec
        return False
    return not real_drn_is_installed()


def apply() -> bool:
    """Install the stand-in if (and only if) the real folder is missing.

    Returns:
        bool: True if the stand-in is active after the call.
    """
    if _FINDER in sys.meta_path:
        return True
    if not is_needed():
        return False
    # Appended, not prepended: a real module found by the normal path
    # finders always wins over the stand-in.
    sys.meta_path.append(_FINDER)
    return True
