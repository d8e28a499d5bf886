# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Load MMEngine checkpoints under torch's ``weights_only=True`` default.

Upstream defect (torch >= 2.6 with mmengine 0.10.7): ``torch.load`` defaults
to ``weights_only=True``, which only rebuilds tensors and plain containers.
MMEngine's checkpoints also hold the message hub's ``HistoryBuffer`` objects
(numpy arrays and scalars inside, and the buffer's statistics methods pickled
as ``getattr(HistoryBuffer, 'mean')``) and ``collections.Counter``. MMEngine
calls ``torch.load`` without ``weights_only`` in ``load_checkpoint``,
``Runner.resume`` and ``load_from``, so ``test``, ``--resume`` and
``load_from`` all fail with ``WeightsUnpickler error: Unsupported global``.

The fix keeps ``weights_only=True`` everywhere and registers, with
``torch.serialization.add_safe_globals``, exactly the data types those
checkpoints contain (:data:`SAFE_TYPES`). ``getattr`` itself is never allowed:
the pickle's ``builtins.getattr`` name is bound to
:func:`history_buffer_method`, which only returns a public method defined on
``HistoryBuffer`` and refuses anything else, so a checkpoint cannot reach other
attributes through it. A pickled callable such as ``os.system`` is still
refused by torch, and never runs.

With torch < 2.6 (``weights_only`` defaults to False) nothing is registered.
"""
import _codecs
import collections
from typing import Any, List, Tuple

import numpy as np
import torch
from mmengine.utils import digit_version

# torch 2.6 switched the default of ``torch.load(weights_only=...)`` to True.
FIRST_TORCH_WITH_WEIGHTS_ONLY_DEFAULT = '2.6.0'


def history_buffer_method(owner: Any, name: str) -> Any:
    """The only ``getattr`` a checkpoint may perform while unpickling.

    MMEngine pickles ``HistoryBuffer._statistics_methods`` (``min``, ``max``,
    ``mean``, ``current`` and registered ones), whose values pickle as
    ``getattr(HistoryBuffer, '<method>')``.

    Raises:
        pickle.UnpicklingError: for any other object or attribute.
    """
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer
    is_public_method = (
        isinstance(name, str) and not name.startswith('_')
        and callable(vars(HistoryBuffer).get(name)))
    if owner is HistoryBuffer and is_public_method:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Refused getattr({owner!r}, {name!r}) while loading a checkpoint: '
        'only public methods of mmengine HistoryBuffer may be looked up. '
        'The checkpoint may be malicious; load it only if you trust it, '
        'with torch.load(..., weights_only=False).')


def _numpy_core_name(name: str) -> List[str]:
    # numpy 2 pickles ``numpy._core.multiarray``; numpy 1 wrote
    # ``numpy.core.multiarray``: accept both spellings of the same function.
    return [f'numpy._core.multiarray.{name}', f'numpy.core.multiarray.{name}']


def safe_types() -> List[Tuple[Any, str]]:
    """``(object, pickled name)`` pairs MMEngine checkpoints need."""
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(
        np, '_core') else np.core.multiarray
    pairs = [
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (collections.Counter, 'collections.Counter'),
        (np.ndarray, 'numpy.ndarray'),
        (np.dtype, 'numpy.dtype'),
        # numpy pickles byte buffers of arrays and scalars through
        # ``_codecs.encode(str, 'latin1')``.
        (_codecs.encode, '_codecs.encode'),
        (history_buffer_method, 'builtins.getattr'),
        (history_buffer_method, '__builtin__.getattr'),
    ]
    for name in _numpy_core_name('_reconstruct'):
        pairs.append((multiarray._reconstruct, name))
    for name in _numpy_core_name('scalar'):
        pairs.append((multiarray.scalar, name))
    # numpy >= 1.25 may pickle a dtype by its class, e.g.
    # ``numpy.dtypes.Float64DType``.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for attr in dir(dtypes):
            cls = getattr(dtypes, attr)
            if isinstance(cls, type) and issubclass(cls, np.dtype):
                pairs.append((cls, f'numpy.dtypes.{attr}'))
    return pairs


def is_needed() -> bool:
    return digit_version(torch.__version__) >= digit_version(
        FIRST_TORCH_WITH_WEIGHTS_ONLY_DEFAULT)


_APPLIED = False


def apply() -> bool:
    """Register :func:`safe_types` with torch (idempotent).

    Returns:
        bool: True if the allowlist is active after the call.
    """
    global _APPLIED
    if _APPLIED:
        return True
    if not is_needed():
        return False
    torch.serialization.add_safe_globals(safe_types())
    _APPLIED = True
    return True
