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

MMEngine's loader for local files (``CheckpointLoader`` scheme ``''``,
which ``load_from``, ``--resume``, ``mim test`` and ``load_checkpoint``
use) is replaced by :func:`load_from_local`: the same, but it passes
``weights_only=True`` explicitly (so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
cannot switch it off) and turns torch's refusal into an
:class:`UnsafeCheckpointError` that names the file, says why it was
refused and how to proceed with a file one trusts. (Torch's own message
names neither the file nor a way forward that works through a config.)

With torch < 2.6 (``weights_only`` defaults to False) nothing is registered.
"""
import _codecs
import collections
import os.path as osp
import pickle
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


class UnsafeCheckpointError(pickle.UnpicklingError):
    """``torch.load(weights_only=True)`` refused an object in a checkpoint.

    A subclass of ``pickle.UnpicklingError`` (what torch raises), so code
    that handles torch's error keeps working.
    """


# Start of every error of torch's weights-only unpickler (refusals of
# objects, but also files that are no pickle at all).
WEIGHTS_ONLY_FAILURE = 'Weights only load failed'
# Phrases of the errors that refuse an object (lower case): a global that
# is not allowlisted (or from a blocked module such as ``posix``), a call,
# object creation or state for a type that is not allowed, and our
# ``getattr`` guard. Other failures (e.g. "Unsupported operand") mean a
# malformed file.
REFUSAL_PHRASES = (
    'unsupported global',
    'trying to call reduce for unrecognized function',
    'can only create new object for',
    'can only build tensor',
    'refused getattr(',
)


def is_weights_only_refusal(err: BaseException) -> bool:
    """Whether ``err`` is torch's refusal of an object under
    ``weights_only=True`` (rather than a malformed file)."""
    message = str(err)
    return (isinstance(err, pickle.UnpicklingError)
            and message.startswith((WEIGHTS_ONLY_FAILURE, 'Refused getattr('))
            and any(phrase in message.lower() for phrase in REFUSAL_PHRASES))


def refusal_details(err: BaseException) -> str:
    """The part of torch's refusal that says which object was refused.

    Torch wraps it in general advice (the 2.6 default change, "re-run with
    ``weights_only=False``", a documentation link); only the specific
    paragraph, e.g. ``Trying to load unsupported GLOBAL posix.system ...``,
    is kept.
    """
    paragraphs = [p.strip() for p in str(err).split('\n\n') if p.strip()]
    specific = [
        p for p in paragraphs
        if not p.startswith((WEIGHTS_ONLY_FAILURE, 'Check the documentation'))
    ]
    return ' '.join(specific or paragraphs)


def refusal_message(filename: str, err: BaseException) -> str:
    """Explain to a user why ``filename`` was not loaded, and what to do."""
    resave = (
        'python -c "import torch; '
        f"c = torch.load('{filename}', map_location='cpu', "
        'weights_only=False); '
        "torch.save(dict(state_dict=c.get('state_dict', c)), "
        f"'{filename}.weights.pth')\"")
    return (
        f'Refused to load the checkpoint {filename} as unsafe: it contains '
        'an object that torch.load(weights_only=True) does not allow '
        f'({refusal_details(err)}). Only tensors, plain containers and the '
        'MMEngine checkpoint types mmaction_tdx allows are loaded; '
        'unpickling anything else can run arbitrary code, so the file may '
        'be malicious. The object was not created.\n'
        'If you trust the file and its source:\n'
        '  - to initialise or test a model, re-save its weights once as a '
        f'plain checkpoint and load that file instead:\n      {resave}\n'
        '  - to resume from it, allow the extra types it needs with '
        '`torch.serialization.add_safe_globals([...])` in a module listed '
        "in the config's `custom_imports`.")


def load_from_local(filename: str, map_location=None) -> Any:
    """MMEngine's ``load_from_local`` with ``weights_only=True`` explicit.

    Raises:
        FileNotFoundError: if ``filename`` is not a file.
        UnsafeCheckpointError: if the checkpoint holds an object that is
            not allowed (see :func:`refusal_message`); it is not created.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if not is_weights_only_refusal(err):
            raise
        raise UnsafeCheckpointError(refusal_message(filename, err)) from None


def is_needed() -> bool:
    return digit_version(torch.__version__) >= digit_version(
        FIRST_TORCH_WITH_WEIGHTS_ONLY_DEFAULT)


_APPLIED = False


def apply() -> bool:
    """Register :func:`safe_types` with torch and :func:`load_from_local`
    as MMEngine's loader of local files (idempotent).

    Returns:
        bool: True if the allowlist is active after the call.
    """
    global _APPLIED
    if _APPLIED:
        return True
    if not is_needed():
        return False
    torch.serialization.add_safe_globals(safe_types())
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    _APPLIED = True
    return True
