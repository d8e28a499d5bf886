# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Undeclared ``importlib_metadata`` dependency of mmaction2 1.2.0.

Upstream defect (mmaction2 1.2.0): ``mmaction/utils/dependency.py`` does
``from importlib_metadata import PackageNotFoundError, distribution`` and
``mmaction/models/multimodal/__init__.py`` imports it, so
``import mmaction.models`` needs the ``importlib_metadata`` backport, which
mmaction2 does not list in its requirements.

mmaction_tdx declares ``importlib_metadata`` in its own ``install_requires``
(the real fix). This module covers environments where our package is used
without being pip-installed (``PYTHONPATH`` checkouts): if the backport is
absent, the standard library's ``importlib.metadata`` (which has the two names
mmaction2 uses since Python 3.8) is registered under the backport's name.
Where the backport is installed, nothing happens.
"""
import sys


def is_needed() -> bool:
    if 'importlib_metadata' in sys.modules:
        return False
    try:
        import importlib_metadata  # noqa: F401
    except ImportError:
        return True
    return False


def apply() -> bool:
    """Alias the stdlib module if the backport is missing.

    Returns:
        bool: True if the alias is active after the call.
    """
    current = sys.modules.get('importlib_metadata')
    if current is not None:
        return getattr(current, '__name__', '') == 'importlib.metadata'
    if not is_needed():
        return False
    import importlib.metadata as stdlib_metadata
    sys.modules['importlib_metadata'] = stdlib_metadata
    return True
