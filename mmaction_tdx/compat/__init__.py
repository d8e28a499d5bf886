# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Fixes for defects of today's OpenMMLab stack, applied on import.

Each module of :data:`FIXES` fixes one upstream defect, names the upstream
version in its docstring, exposes ``is_needed()`` and ``apply()``, and does
nothing where the installed upstream is already fixed. ``is_needed()``
decides from installed versions (:mod:`._versions`) or files, never by
parsing upstream's source or building a model: every process (and DDP
rank) runs it on import. A fix that only our own classes need lives in
them, not in a patched upstream class (:mod:`.resnet_tsm_scratch`); one
that is only a base of our classes and applies nothing on import is no
entry of :data:`FIXES` (:mod:`.resnet_train`: our ResNet backbones'
``train()`` returns the module).
:func:`apply_all` runs them in the order their dependencies need (the
``mmaction.models`` import fixes before anything that imports
``mmaction.models``).

Setting ``MMACTION_TDX_SKIP_COMPAT`` to a comma-separated list of fix names
(keys of :data:`FIXES`) skips them; the test-suite uses it to show that each
defect is real where the fix is needed.
"""
import os
from collections import OrderedDict

from . import (
    importlib_metadata_shim,
    mmaction_drn,
    mmengine_config_scope,
    mmengine_cpu_dist,
    resnet_tsm_scratch,
    torch_load,
)

# name -> module; order matters (see module docstring).
FIXES = OrderedDict([
    ('importlib_metadata', importlib_metadata_shim),
    ('mmaction_drn', mmaction_drn),
    ('torch_weights_only', torch_load),
    ('mmengine_config_scope', mmengine_config_scope),
    ('resnet_tsm_from_scratch', resnet_tsm_scratch),
    ('mmengine_cpu_distributed', mmengine_cpu_dist),
])

SKIP_ENV = 'MMACTION_TDX_SKIP_COMPAT'
_STATUS = OrderedDict()


def apply_all() -> 'OrderedDict[str, bool]':
    """Apply every fix that the installed stack needs.

    Returns:
        OrderedDict[str, bool]: for each fix, whether it is active.
    """
    skipped = {
        name.strip()
        for name in os.environ.get(SKIP_ENV, '').split(',') if name.strip()
    }
    unknown = skipped - set(FIXES)
    if unknown:
        raise ValueError(f'{SKIP_ENV} names unknown fixes {sorted(unknown)}; '
                         f'known: {list(FIXES)}')
    for name, fix in FIXES.items():
        if name in skipped:
            _STATUS[name] = False
        elif not _STATUS.get(name):
            _STATUS[name] = fix.apply()
    return OrderedDict(_STATUS)


def status() -> 'OrderedDict[str, bool]':
    """Which fixes are active (after :func:`apply_all`)."""
    return OrderedDict(_STATUS)
