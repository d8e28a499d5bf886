# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Load checkpoint files and URLs with ``torch.load(weights_only=True)``.

:func:`load_checkpoint_file` is the one place where mmaction_tdx unpickles
a checkpoint (MMEngine's loaders are routed here by
:mod:`mmaction_tdx.compat.torch_load`). It

* passes ``weights_only=True`` explicitly, so neither torch's default nor
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` can turn it off;
* allows what MMEngine's own checkpoints hold (the message hub's
  ``HistoryBuffer`` with numpy arrays and scalars inside,
  ``collections.Counter``) only to its own ``torch.load`` call, in its own
  thread (:func:`allowed_globals`): torch's process-wide list of safe
  globals is never changed, so a user's own ``torch.load``, before, after
  or at the same time in another thread, behaves exactly as plain
  torch's, and the user's own ``add_safe_globals`` entries stay;
* binds every numpy and MMEngine name a checkpoint may use to a checking
  shim, never to the real object (:func:`mmengine_globals`). The shims
  accept numeric built-in dtypes only and rebuild arrays and scalars from
  their raw bytes, with dtypes made here; object dtypes, dtype flags and
  everything else numpy's own unpickling would take from the file are
  refused or ignored. A ``HistoryBuffer`` is rebuilt from validated data,
  and its statistics methods must be MMEngine's own: nothing in a file can
  change class-level state (MMEngine's ``__setstate__`` would replace the
  process-wide table of statistics methods);
* turns every failure into one error that names the file (quoted with
  ``shlex.quote``, so a name can never make a suggested command run code)
  and says what is wrong: :class:`UnsafeCheckpointError` for a refused
  object, :class:`CheckpointFileError` for a file that is empty,
  truncated, corrupt, too large, of another format, or fails the hash in
  its name.

:func:`load_url` downloads to torch's hub cache like
``torch.hub.load_state_dict_from_url`` (with a time limit,
:func:`download_url_to_file`) and then loads the cached file with
:func:`load_checkpoint_file`. Where the file name carries a SHA-256 prefix
(``name-<hash>.pth``, as torchvision's and OpenMMLab's model zoos name
their files) the download is checked while it arrives, and a file found in
the cache is checked again before it is read, so a file planted in the
cache is not loaded.

Sizes are checked before anything is read: the file's, and for a zip the
uncompressed size its index declares (what reading it allocates), so
neither a large file nor a small zip bomb reaches memory.
"""
import contextlib
import contextvars
import hashlib
import io
import os
import os.path as osp
import pickle
import re
import shlex
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter, OrderedDict
from typing import Any, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import numpy as np
import torch

# Default for :func:`max_checkpoint_bytes`: more than any video model's
# checkpoint with its optimizer state, less than a runaway or hostile file
# that would exhaust the memory.
DEFAULT_MAX_CHECKPOINT_BYTES = 32 * 1024**3
MAX_BYTES_ENV = 'MMACTION_TDX_MAX_CHECKPOINT_BYTES'

# A file name like ``resnet50-19c8e357.pth``: torch.hub's convention (its
# HASH_REGEX), with at least 8 hex digits so that a name such as
# ``model-2024.pth`` is not taken for a hash.
HASH_IN_NAME = re.compile(r'-([a-f0-9]{8,})\.')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """``torch.load(weights_only=True)`` refused an object in a checkpoint.

    A subclass of ``pickle.UnpicklingError`` (what torch raises), so code
    that handles torch's error keeps working.

    Attributes:
        details (str): Which object was refused (torch's or our checks'
            words, see :func:`refusal_details`).
    """

    details = ''


class CheckpointFileError(RuntimeError):
    """A checkpoint file cannot be read: empty, truncated, corrupt, too
    large, of another format, or not matching the hash in its name.

    A subclass of ``RuntimeError`` (what torch raises for a corrupt file).
    """


def quote(name: Any) -> str:
    """``name`` as it can be pasted into a shell command."""
    return shlex.quote(os.fspath(name) if isinstance(name, os.PathLike)
                       else str(name))


# --------------------------------------------------------------------------
# Refusals raised while unpickling
# --------------------------------------------------------------------------
# Our shims start their refusals with this, so that torch's wrapped
# message can be told apart from a malformed file.
SHIM_REFUSAL = 'Refused by the checkpoint checks:'


def _refuse(what: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(
        f'{SHIM_REFUSAL} {what} MMEngine checkpoints never hold this; the '
        'file may be malicious.')


# Start of every error of torch's weights-only unpickler (refusals of
# objects, but also files that are no pickle at all).
WEIGHTS_ONLY_FAILURE = 'Weights only load failed'
# Phrases of the errors that refuse an object (lower case): a global that
# is not allowlisted (or from a blocked module such as ``posix``), a call,
# object creation or state for a type that is not allowed, and our shims.
# Other failures (e.g. "Unsupported operand") mean a malformed file.
REFUSAL_PHRASES = (
    'unsupported global',
    'trying to call reduce for unrecognized function',
    'can only create new object for',
    'can only build tensor',
    SHIM_REFUSAL.lower(),
)


def is_weights_only_refusal(err: BaseException) -> bool:
    """Whether ``err`` is torch's refusal of an object under
    ``weights_only=True`` (rather than a malformed file)."""
    message = str(err)
    return (isinstance(err, pickle.UnpicklingError)
            and message.startswith((WEIGHTS_ONLY_FAILURE, SHIM_REFUSAL))
            and any(phrase in message.lower() for phrase in REFUSAL_PHRASES))


def refusal_details(err: BaseException) -> str:
    """The part of torch's refusal that says which object was refused.

    Torch wraps it in general advice (the 2.6 default change, "re-run with
    ``weights_only=False``", how to allowlist the global, a documentation
    link); only the specific words, e.g. ``Trying to load unsupported
    GLOBAL posix.system ...``, are kept.
    """
    message = str(err).split('WeightsUnpickler error:', 1)[-1]
    message = message.split('Check the documentation of torch.load', 1)[0]
    message = message.split(' Please use `torch.serialization.', 1)[0]
    paragraphs = [p.strip() for p in message.split('\n\n') if p.strip()]
    specific = [
        p for p in paragraphs if not p.startswith(WEIGHTS_ONLY_FAILURE)
    ]
    return ' '.join(specific or paragraphs)


def refusal_message(filename: str, err: BaseException) -> str:
    """Explain to a user why ``filename`` was not loaded, and what to do.

    The suggested command gets the file names as arguments, quoted for the
    shell, never inside its Python code.
    """
    resave = (
        "python -c 'import sys, torch; c = torch.load(sys.argv[1], "
        'map_location="cpu", weights_only=False); '
        'torch.save(dict(state_dict=c.get("state_dict", c)), '
        f"sys.argv[2])' {quote(filename)} {quote(filename + '.weights.pth')}")
    return (
        f'Refused to load the checkpoint {quote(filename)} as unsafe: it '
        'contains an object that torch.load(weights_only=True) does not '
        f'allow ({refusal_details(err)}). Only tensors, plain containers and '
        'the MMEngine checkpoint types mmaction_tdx checks are loaded; '
        'unpickling anything else can run arbitrary code, so the file may '
        'be malicious. The object was not created.\n'
        'If you trust the file and its source:\n'
        '  - to initialise or test a model, re-save its weights once as a '
        f'plain checkpoint and load that file instead:\n      {resave}\n'
        '  - to resume from it, allow the extra types it needs with '
        '`torch.serialization.add_safe_globals([...])` in a module listed '
        "in the config's `custom_imports`.")


# --------------------------------------------------------------------------
# Checking shims for the names MMEngine checkpoints use
# --------------------------------------------------------------------------
# Numeric built-in dtypes, as numpy pickles them (``np.dtype('f8')``).
# Not: object, strings, void/structured, datetimes, long double.
NUMERIC_DTYPES = frozenset([
    'b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2', 'f4', 'f8',
    'c8', 'c16'
])
_BYTE_ORDERS = {'<': '<', '>': '>', '=': '=', '|': '|'}
MAX_ARRAY_DIMS = 32
# The statistics MMEngine's HistoryBuffer defines for itself.
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')
HISTORY_BUFFER_STATE_KEYS = frozenset(
    ['max_length', '_log_history', '_count_history', 'statistics_methods'])



class _LoadState:
    """What one of our loads allows (``{pickled name: object}``) and how
    many placeholders it made (none: nothing to resolve)."""

    __slots__ = ('allowed', 'created')

    def __init__(self, allowed: dict) -> None:
        self.allowed = allowed
        self.created = 0


# The load running in this thread (a context variable: every thread, and
# every asyncio task, has its own; a new thread starts without one).
_LOAD: contextvars.ContextVar = contextvars.ContextVar(
    'mmaction_tdx_checkpoint_load', default=None)


class _Pending:
    """Something a shim made while unpickling, turned into the real object
    by :func:`_resolve` after ``torch.load`` returns (numpy's pickles set
    their state with a BUILD after the call, and that state must be
    checked before anything real is made from it).

    Made without arguments (as a pickle's NEWOBJ makes it, which calls
    ``__new__`` only): the defaults are class attributes.
    """

    def __new__(cls, *args):
        if args:
            raise _refuse(f'creating {cls.__name__[1:]} with {args!r:.200}.')
        state = _LOAD.get()
        if state is None:
            raise _refuse(f'a {cls.__name__[1:]} outside a checked load.')
        state.created += 1
        return super().__new__(cls)

    def resolve(self, memo: dict) -> Any:
        raise NotImplementedError


class _PendingDtype(_Pending):
    """``numpy.dtype(spec, align, copy)`` of a numeric built-in type."""

    spec = 'f8'
    order = '='

    def __setstate__(self, state: Any) -> None:
        # numpy's dtype state: (version, byte order, subarray, names,
        # fields, elsize, alignment, flags[, metadata]). Only the byte
        # order is used; the flags are never taken from a file.
        if not (isinstance(state, tuple) and len(state) in (8, 9)
                and state[0] in (3, 4) and state[1] in _BYTE_ORDERS
                and state[2:5] == (None, None, None)
                and state[5:7] == (-1, -1) and state[8:] in ((), (None, ))):
            raise _refuse(f'the state {state!r} of dtype {self.spec!r} (a '
                          'numeric dtype has a byte order and nothing else).')
        self.order = state[1]

    def dtype(self) -> np.dtype:
        dtype = np.dtype(self.spec)
        return dtype if self.order in '=|' else dtype.newbyteorder(self.order)

    def resolve(self, memo: dict) -> np.dtype:
        return self.dtype()


def checked_dtype(spec: Any, align: Any = False, copy: Any = True) -> Any:
    """What the name ``numpy.dtype`` unpickles as: numeric built-in types
    only."""
    if not (isinstance(spec, str) and spec.lstrip('<>=|') in NUMERIC_DTYPES
            and isinstance(align, bool) and isinstance(copy, bool)):
        raise _refuse(f'numpy.dtype({spec!r}, {align!r}, {copy!r}): only '
                      f'numeric built-in dtypes {sorted(NUMERIC_DTYPES)} are '
                      'allowed.')
    pending = _PendingDtype()
    pending.spec = spec.lstrip('<>=|')
    if spec[0] in '<>':
        pending.order = spec[0]
    return pending


def _from_bytes(dtype: Any, data: Any, count: int, what: str) -> np.ndarray:
    if not isinstance(dtype, _PendingDtype):
        raise _refuse(f'{what} with dtype {dtype!r}.')
    real = dtype.dtype()
    if not isinstance(data, bytes) or len(data) != count * real.itemsize:
        raise _refuse(f'{what} of {count} x {real} from {data!r:.100} '
                      f'(needs {count * real.itemsize} bytes).')
    if real.kind == 'b' and data.strip(b'\x00\x01'):
        raise _refuse(f'{what}: booleans other than 0 and 1.')
    return np.frombuffer(data, dtype=real, count=count)


def checked_scalar(dtype: Any, data: Any = None) -> Any:
    """What ``numpy._core.multiarray.scalar`` unpickles as: a numeric
    numpy scalar rebuilt from its raw bytes."""
    return _from_bytes(dtype, data, 1, 'a numpy scalar')[0]


def empty_bytes(*args: Any) -> bytes:
    """What ``builtins.bytes`` unpickles as: pickle protocol 2 writes
    ``b''`` (the data of an empty array) as ``bytes()``; nothing else."""
    if args:
        raise _refuse(f'bytes{args!r:.100}: only bytes() is allowed.')
    return b''


def _ndarray_name(*args: Any) -> None:
    """What the name ``numpy.ndarray`` unpickles as: a token that only
    :func:`checked_reconstruct` accepts."""
    raise _refuse(f'numpy.ndarray{args!r}: arrays are only rebuilt through '
                  "numpy's array pickling.")


class _PendingArray(_Pending):
    """A numpy array of a numeric dtype, rebuilt from its bytes."""

    array = None

    def __setstate__(self, state: Any) -> None:
        # numpy's array state: (version, shape, dtype, is_fortran, bytes).
        if not (isinstance(state, tuple) and len(state) == 5
                and state[0] == 1 and isinstance(state[1], tuple)
                and len(state[1]) <= MAX_ARRAY_DIMS and all(
                    type(n) is int and n >= 0 for n in state[1])
                and isinstance(state[3], bool)):
            raise _refuse(f'the array state {state!r:.200}.')
        _, shape, dtype, fortran, data = state
        count = int(np.prod(shape, dtype=object))
        flat = _from_bytes(dtype, data, count, f'an array of shape {shape}')
        self.array = flat.reshape(shape, order='F' if fortran else 'C').copy(
            order='A')

    def resolve(self, memo: dict) -> np.ndarray:
        if self.array is None:
            raise _refuse('an array without its data.')
        return self.array


def checked_reconstruct(subtype: Any, shape: Any, typecode: Any) -> Any:
    """What ``numpy._core.multiarray._reconstruct`` unpickles as: an empty
    plain ``ndarray`` whose data the BUILD that follows sets."""
    if subtype is not _ndarray_name or shape != (0, ) or typecode != b'b':
        raise _refuse(f'_reconstruct({subtype!r}, {shape!r}, {typecode!r}):'
                      ' only plain numpy arrays are allowed.')
    return _PendingArray()


def _history_buffer_class():
    from mmengine.logging.history_buffer import HistoryBuffer
    return HistoryBuffer


def known_statistics() -> dict:
    """Statistics methods a checkpoint may name: MMEngine's own, looked
    up on ``HistoryBuffer`` (name -> function)."""
    cls = _history_buffer_class()
    return {name: vars(cls)[name] for name in HISTORY_BUFFER_STATISTICS}


def history_buffer_method(owner: Any, name: Any) -> Any:
    """The only ``getattr`` a checkpoint may perform while unpickling.

    MMEngine pickles the buffer's statistics methods (``min``, ``max``,
    ``mean``, ``current``) as ``getattr(HistoryBuffer, '<method>')``; any
    other owner or name is refused.
    """
    methods = known_statistics()
    if owner is _PendingHistoryBuffer and isinstance(name, str) \
            and name in methods:
        return methods[name]
    raise _refuse(f'getattr({owner!r}, {name!r}): only the statistics '
                  f'methods {list(methods)} of mmengine HistoryBuffer may be'
                  ' looked up.')


class _PendingHistoryBuffer(_Pending):
    """What ``mmengine.logging.history_buffer.HistoryBuffer`` unpickles
    as; becomes a real ``HistoryBuffer`` once its state is checked."""

    state = None

    def __setstate__(self, state: Any) -> None:
        if not (type(state) is dict
                and set(state) <= HISTORY_BUFFER_STATE_KEYS
                and {'max_length', '_log_history', '_count_history'} <=
                set(state)):
            keys = sorted(state) if isinstance(state, dict) else state
            raise _refuse(f'HistoryBuffer state with keys {keys!r:.200}.')
        methods = state.get('statistics_methods', {})
        known = known_statistics()
        if type(methods) is not dict or any(
                known.get(name) is not method
                for name, method in methods.items()):
            raise _refuse(
                f'HistoryBuffer statistics_methods {methods!r:.300}: only '
                f'MMEngine\'s own {list(known)}, each under its own name, '
                'are allowed (they would replace the methods of every '
                'HistoryBuffer in the process).')
        self.state = state

    def resolve(self, memo: dict) -> Any:
        if self.state is None:
            raise _refuse('a HistoryBuffer without its state.')
        max_length = self.state['max_length']
        logs, counts = (_resolve(self.state[key], memo)
                        for key in ('_log_history', '_count_history'))
        if not (type(max_length) is int and max_length > 0 and all(
                isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype.kind in
                'iuf' for a in (logs, counts)) and len(logs) == len(counts)):
            raise _refuse('HistoryBuffer data other than two 1-D numeric '
                          'arrays of the same length and a positive '
                          'max_length.')
        cls = _history_buffer_class()
        buffer = cls.__new__(cls)
        # Instance attributes only, as HistoryBuffer.__init__ sets them;
        # MMEngine's defaults of the class table are set as in __init__.
        buffer.max_length = max_length
        buffer._log_history, buffer._count_history = logs, counts
        buffer._set_default_statistics()
        return buffer


# Names no pickle can spell (a GLOBAL opcode ends its names with a
# newline): the placeholder types must be in torch's list for their BUILD
# to be allowed, but no file may create them by name.
_UNNAMEABLE = 'mmaction_tdx checkpoint placeholder\n'


def mmengine_globals() -> List[Tuple[Any, str]]:
    """``(shim, pickled name)`` pairs that MMEngine checkpoints need, for
    ``torch.serialization.safe_globals``."""
    pairs = [
        (_PendingHistoryBuffer,
         'mmengine.logging.history_buffer.HistoryBuffer'),
        (Counter, 'collections.Counter'),
        (history_buffer_method, 'builtins.getattr'),
        (empty_bytes, 'builtins.bytes'),
        (checked_dtype, 'numpy.dtype'),
        (_ndarray_name, 'numpy.ndarray'),
        (_PendingDtype, _UNNAMEABLE + 'dtype'),
        (_PendingArray, _UNNAMEABLE + 'array'),
    ]
    # numpy 2 pickles ``numpy._core.multiarray``, numpy 1
    # ``numpy.core.multiarray``: the same functions.
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        pairs += [(checked_reconstruct, f'{module}._reconstruct'),
                  (checked_scalar, f'{module}.scalar')]
    return pairs


def _global_name(entry: Any) -> str:
    if isinstance(entry, tuple):
        return entry[1]
    return f'{entry.__module__}.{entry.__qualname__}'


# torch's weights-only unpickler looks up the user's allowlist through
# this function of its module, at every GLOBAL, NEWOBJ, REDUCE and BUILD.
_TORCH_LOOKUP = '_get_user_allowed_globals'
_SCOPED = '_mmaction_tdx_scoped'
_INSTALL_LOCK = threading.Lock()
# Only where the lookup cannot be scoped (another torch): our loads then
# widen torch's list one at a time.
_FALLBACK_LOCK = threading.RLock()


def _scope_torch_lookup() -> bool:
    """Make torch's weights-only unpickler see our entries in the thread
    of one of our loads only (idempotent).

    Torch keeps one process-wide set of safe globals, and its
    ``safe_globals`` context manager adds to and removes from that set: two
    loads at once leave entries behind or drop the user's, and every
    ``torch.load`` of every thread sees what one load allows. Instead, the
    unpickler's lookup of that set is wrapped once: it answers torch's set
    plus, only while one of our loads runs in the calling thread
    (:data:`_LOAD`), that load's entries (ours win over the user's under
    the same name, so that a checking shim, not e.g. the real
    ``numpy.dtype``, answers it). Torch's set itself is never changed, and
    any other ``torch.load`` gets exactly what it got before.

    Returns:
        bool: False if this torch has no such lookup (then
        :func:`allowed_globals` falls back to torch's context manager).
    """
    from torch import _weights_only_unpickler as unpickler
    with _INSTALL_LOCK:
        lookup = getattr(unpickler, _TORCH_LOOKUP, None)
        if getattr(lookup, _SCOPED, False):
            return True
        load = getattr(getattr(unpickler, 'Unpickler', None), 'load', None)
        if lookup is None or _TORCH_LOOKUP not in getattr(
                getattr(load, '__code__', None), 'co_names', ()):
            return False

        def scoped_lookup() -> dict:
            allowed = lookup()
            state = _LOAD.get()
            if state is not None:
                allowed.update(state.allowed)
            return allowed

        setattr(scoped_lookup, _SCOPED, True)
        scoped_lookup.__wrapped__ = lookup
        setattr(unpickler, _TORCH_LOOKUP, scoped_lookup)
        return True


@contextlib.contextmanager
def allowed_globals(extra: Iterable[Any] = (),
                    mmengine: bool = True) -> Iterator[_LoadState]:
    """Allow :func:`mmengine_globals` (if ``mmengine``) and ``extra`` to
    ``torch.load(weights_only=True)`` calls made by this thread in the
    block, and to no other (see :func:`_scope_torch_lookup`).

    Torch's process-wide list (``torch.serialization.get_safe_globals()``)
    is not changed: the user's own entries stay allowed, also in the block,
    except those under the names of ours, which our checking shims answer.

    Yields:
        _LoadState: The load's state (its placeholder count).
    """
    ours = (mmengine_globals() if mmengine else []) + list(extra)
    state = _LoadState({
        _global_name(entry):
        entry[0] if isinstance(entry, tuple) else entry
        for entry in ours
    })
    token = _LOAD.set(state)
    try:
        if _scope_torch_lookup():
            yield state
        else:
            with _FALLBACK_LOCK, _widened_torch_list(ours):
                yield state
    finally:
        _LOAD.reset(token)


@contextlib.contextmanager
def _widened_torch_list(ours: List[Any]) -> Iterator[None]:
    # The fallback: torch's own context manager on torch's process-wide
    # list, with the user's entries under our names set aside.
    names = {_global_name(entry) for entry in ours}
    before = torch.serialization.get_safe_globals()
    shadowing = [e for e in before if _global_name(e) in names]
    if shadowing:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(
            [e for e in before if e not in shadowing])
    try:
        with torch.serialization.safe_globals(ours):
            yield
    finally:
        if shadowing:
            torch.serialization.clear_safe_globals()
            torch.serialization.add_safe_globals(before)


# Markers of a tuple (or frozenset) in ``_resolve``'s memo while its
# items are resolved, and once it was reached again through them.
_IN_PROGRESS = object()
_REENTERED = object()


def _resolve(obj: Any, memo: dict) -> Any:
    """``obj`` with every placeholder replaced by its real object, in
    place for lists, dicts and sets (identity and sharing are kept).

    ``memo`` maps ``id(original) -> (original, result)``; holding the
    original keeps its id from being reused during the walk.

    A tuple is immutable: one that holds a placeholder is replaced by a
    new tuple, so a list or dict inside it that holds the tuple itself
    (``t = (array, l)``, ``l = [t]``) would keep the old one, placeholder
    and all. Such a cycle is refused; MMEngine checkpoints hold none.
    """
    key = id(obj)
    if key in memo:
        original, result = memo[key]
        if result is _IN_PROGRESS or result is _REENTERED:
            memo[key] = (original, _REENTERED)
            return original
        return result
    if isinstance(obj, _Pending):
        memo[key] = (obj, None)
        result = obj.resolve(memo)
        memo[key] = (obj, result)
        return result
    if type(obj) in (tuple, frozenset):
        memo[key] = (obj, _IN_PROGRESS)
        items = [_resolve(item, memo) for item in obj]
        changed = any(new is not old for new, old in zip(items, obj))
        if changed and memo[key][1] is _REENTERED:
            raise _refuse(
                f'a {type(obj).__name__} that contains itself (through a '
                'list or dict) next to numpy data or a HistoryBuffer: it '
                'cannot be rebuilt with its own contents.')
        memo[key] = (obj, type(obj)(items) if changed else obj)
        return memo[key][1]
    memo[key] = (obj, obj)
    if isinstance(obj, list):
        obj[:] = [_resolve(item, memo) for item in obj]
    elif isinstance(obj, dict):
        items = [(_resolve(k, memo), _resolve(v, memo))
                 for k, v in obj.items()]
        if any(new is not old for (new, _), old in zip(items, obj)):
            obj.clear()
        for k, v in items:  # not update(): Counter.update adds
            obj[k] = v
        if type(obj) is OrderedDict and vars(obj):
            _resolve(vars(obj), memo)
    elif isinstance(obj, set):
        items = [_resolve(item, memo) for item in obj]
        obj.clear()
        obj.update(items)
    return obj


# --------------------------------------------------------------------------
# Loading a file
# --------------------------------------------------------------------------
def max_checkpoint_bytes() -> int:
    """Largest checkpoint loaded: ``$MMACTION_TDX_MAX_CHECKPOINT_BYTES`` or
    :data:`DEFAULT_MAX_CHECKPOINT_BYTES`."""
    value = os.environ.get(MAX_BYTES_ENV, '')
    try:
        return int(value) if value else DEFAULT_MAX_CHECKPOINT_BYTES
    except ValueError:
        raise ValueError(f'{MAX_BYTES_ENV}={value!r} is not a number of '
                         'bytes; set it to an integer, e.g. '
                         f'{DEFAULT_MAX_CHECKPOINT_BYTES}.') from None


ZIP_MAGIC = b'PK\x03\x04'
PICKLE_PROTO = b'\x80'
# torch's first format (torch < 0.4, e.g. some early torchvision files).
TAR_MAGIC_AT_257 = b'ustar'
HEAD_BYTES = 512


def _format_problem(head: bytes, name: str) -> Optional[str]:
    """What is wrong with a file that starts with ``head``, or None if it
    may be a PyTorch checkpoint."""
    if head.startswith((ZIP_MAGIC, PICKLE_PROTO)) or head[257:262] == \
            TAR_MAGIC_AT_257:
        return None
    if name.endswith('.safetensors'):
        return None  # torch.load reads these through safetensors
    if head.lstrip().startswith(b'<'):
        return ('is a web page (HTML/XML), not a checkpoint: a download '
                'returned an error or login page instead of the file. Check '
                'the URL and download it again')
    if len(head) >= 10 and head[8:10] == b'{"':
        return ('is a safetensors file, not a torch.save checkpoint: give '
                'it the suffix .safetensors, or convert it with '
                'safetensors.torch.load_file and torch.save')
    return (f'is not a PyTorch checkpoint (it starts with {head[:16]!r}, '
            'not with a zip archive or a pickle)')


def _zip_unpacked_bytes(source: Any) -> Optional[int]:
    """The sum of the uncompressed sizes that the central directory of
    the zip ``source`` declares (what reading it allocates: torch's reader
    makes a buffer of each record's declared size), or None if it has no
    readable index. Only the index is read; nothing is inflated."""
    start = None if isinstance(source, str) else source.tell()
    try:
        with zipfile.ZipFile(source) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    finally:
        if start is not None:
            source.seek(start)


# torch's messages for files that end too early, and for damaged ones.
_TRUNCATED = ('central directory', 'unexpected eof', 'ran out of input',
              'pickle data was truncated', 'eoferror')
_CORRUPT = ('pytorchstreamreader', 'invalid magic number', 'corrupt',
            'invalid load key', 'unpickling stack underflow',
            'unsupported operand', 'could not find mark', 'crc')


def _read_problem(err: BaseException) -> Optional[str]:
    """What a failure of ``torch.load`` says about the file, or None if it
    is not about the file (e.g. a device that is not available)."""
    message = str(err)
    if message.startswith(WEIGHTS_ONLY_FAILURE):
        message = refusal_details(err)
    text = f'{type(err).__name__}: {message}'
    lower = text.lower()
    if isinstance(err, EOFError) or any(p in lower for p in _TRUNCATED):
        return ('is truncated: it ends before the checkpoint does (an '
                'interrupted save or download). Save or download it '
                f'again. ({text.strip() or type(err).__name__})')
    if 'torchscript' in lower:
        return ('is a TorchScript archive (torch.jit.save), not a '
                'checkpoint: load it with torch.jit.load')
    if isinstance(err, (pickle.UnpicklingError, zipfile.BadZipFile, OSError,
                        ValueError, TypeError, KeyError, IndexError,
                        AttributeError)) or any(p in lower for p in _CORRUPT):
        return ('is corrupt: it is not a readable PyTorch checkpoint. Save or'
                f' download it again. ({text.strip()})')
    if isinstance(err, MemoryError):
        return ('does not fit in memory; load it on a machine with more '
                'memory')
    return None


def load_checkpoint_file(source: Any,
                         map_location: Any = None,
                         *,
                         name: Optional[str] = None,
                         extra_globals: Iterable[Any] = (),
                         allow_mmengine: bool = True) -> Any:
    """``torch.load(source, weights_only=True)`` with the checks above.

    Args:
        source (str | PathLike | bytes | file-like): A file path, the bytes
            of a checkpoint, or a binary file object.
        map_location: As for ``torch.load``.
        name (str, optional): How to name the source in errors (a URL, a
            remote path); defaults to the path.
        extra_globals: More entries for ``torch.serialization.safe_globals``
            for this call.
        allow_mmengine (bool): Whether what MMEngine checkpoints hold
            (:func:`mmengine_globals`) is allowed; False allows tensors,
            plain containers and ``extra_globals`` only.

    Raises:
        FileNotFoundError: if ``source`` is a path that is not a file.
        UnsafeCheckpointError: for an object that is not allowed; it is not
            created.
        CheckpointFileError: for a file that cannot be read.
    """
    if isinstance(source, (str, os.PathLike)):
        path = osp.expanduser(os.fspath(source))
        name = path if name is None else name
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{quote(path)} can not be found (no such file).')
        size = osp.getsize(path)
        with open(path, 'rb') as file:
            head = file.read(HEAD_BYTES)
        source = path
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = io.BytesIO(source)
        name = '<checkpoint data>' if name is None else name
        start = source.tell()
        size = source.seek(0, io.SEEK_END) - start
        source.seek(start)
        head = source.read(HEAD_BYTES)
        source.seek(start)
    fail = f'Cannot load the checkpoint {quote(name)}:'
    if size == 0:
        raise CheckpointFileError(
            f'{fail} it is empty (0 bytes), e.g. an interrupted save or '
            'download. Save or download it again.')
    limit = max_checkpoint_bytes()
    if size > limit:
        raise CheckpointFileError(
            f'{fail} it is too large ({size} bytes; the limit is {limit}).'
            f' If it really is the checkpoint, raise the limit with '
            f'{MAX_BYTES_ENV}=<bytes>.')
    problem = _format_problem(head, str(name))
    if problem:
        raise CheckpointFileError(f'{fail} it {problem}.')
    if head.startswith(ZIP_MAGIC):
        unpacked = _zip_unpacked_bytes(source)
        if unpacked is None:
            raise CheckpointFileError(
                f'{fail} it is truncated: the index of its zip archive, at '
                'the end of the file, is missing (an interrupted save or '
                'download). Save or download it again.')
        if unpacked > limit:
            raise CheckpointFileError(
                f'{fail} it is too large: its {size} bytes unpack to '
                f'{unpacked} bytes (the limit is {limit}; torch.save never '
                'compresses, so the file may be a zip bomb). If it really is'
                f' the checkpoint, raise the limit with {MAX_BYTES_ENV}='
                '<bytes>.')
    try:
        with allowed_globals(extra_globals, allow_mmengine) as state:
            checkpoint = torch.load(
                source, map_location=map_location, weights_only=True)
        if state.created:
            checkpoint = _resolve(checkpoint, {})
    except pickle.UnpicklingError as err:
        if is_weights_only_refusal(err):
            refusal = UnsafeCheckpointError(refusal_message(str(name), err))
            refusal.details = refusal_details(err)
            raise refusal from None
        raise CheckpointFileError(f'{fail} it {_read_problem(err)}.') \
            from None
    except RecursionError:
        raise CheckpointFileError(
            f'{fail} it is corrupt: its objects are nested too deeply for '
            'a checkpoint.') from None
    except Exception as err:
        problem = _read_problem(err)
        if problem is None:
            raise CheckpointFileError(f'{fail} {type(err).__name__}: '
                                      f'{err}') from err
        raise CheckpointFileError(f'{fail} it {problem}.') from None
    return checkpoint


# --------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------
def hash_prefix(filename: str) -> Optional[str]:
    """The SHA-256 prefix in a file name like ``resnet50-19c8e357.pth``."""
    match = HASH_IN_NAME.search(osp.basename(filename))
    return match.group(1) if match else None


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for block in iter(lambda: file.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


# How long a download may wait for the server: to connect, for the
# headers, and for each block of data.
DOWNLOAD_TIMEOUT_ENV = 'MMACTION_TDX_DOWNLOAD_TIMEOUT'
DEFAULT_DOWNLOAD_TIMEOUT = 60.0
DOWNLOAD_BLOCK = 1 << 16


def download_timeout() -> float:
    """Seconds a download waits for the server before it fails:
    ``$MMACTION_TDX_DOWNLOAD_TIMEOUT`` or :data:`DEFAULT_DOWNLOAD_TIMEOUT`.
    """
    value = os.environ.get(DOWNLOAD_TIMEOUT_ENV, '')
    try:
        seconds = float(value) if value else DEFAULT_DOWNLOAD_TIMEOUT
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f'{DOWNLOAD_TIMEOUT_ENV}={value!r} is not a positive '
                         'number of seconds; set it to e.g. '
                         f'{DEFAULT_DOWNLOAD_TIMEOUT:g}.')
    return seconds


def download_url_to_file(url: str,
                         dst: str,
                         hash_prefix: Optional[str] = None,
                         progress: bool = True,
                         timeout: Optional[float] = None) -> None:
    """``torch.hub.download_url_to_file`` with a time limit and a size
    limit.

    As torch.hub does it: into a temporary file next to ``dst``, hashed
    while it arrives, renamed to ``dst`` only when complete and matching
    ``hash_prefix``. Torch's function cannot be given a time limit (its
    ``urlopen`` takes none, and ``socket.setdefaulttimeout`` would change
    every socket of the process), so a server that sends its headers and
    then nothing would hang the run for ever.

    Args:
        timeout (float, optional): Seconds to wait for the server at any
            point (connection, headers, each block of data); defaults to
            :func:`download_timeout`.

    Raises:
        CheckpointFileError: if the download fails, times out, exceeds
            :func:`max_checkpoint_bytes` or does not match ``hash_prefix``;
            nothing is left at ``dst``.
    """
    timeout = download_timeout() if timeout is None else timeout
    limit = max_checkpoint_bytes()
    partial = f'{dst}.{uuid.uuid4().hex}.partial'
    digest = hashlib.sha256()
    failed = f'Cannot download the checkpoint {quote(url)} to {quote(dst)}:'
    began = time.monotonic()
    try:
        request = Request(url, headers={'User-Agent': 'torch.hub'})
        with open(partial, 'xb') as file, urlopen(
                request, timeout=timeout) as response:
            length = response.headers.get('Content-Length')
            length = int(length) if length and length.isdigit() else None
            if length is not None and length > limit:
                raise CheckpointFileError(
                    f'{failed} the server announces {length} bytes, more '
                    f'than the limit of {limit}. If it really is the '
                    f'checkpoint, raise the limit with {MAX_BYTES_ENV}='
                    '<bytes>.')
            received = 0
            with torch.hub.tqdm(
                    total=length, disable=not progress, unit='B',
                    unit_scale=True, unit_divisor=1024) as bar:
                while True:
                    block = response.read(DOWNLOAD_BLOCK)
                    if not block:
                        break
                    received += len(block)
                    if received > limit:
                        raise CheckpointFileError(
                            f'{failed} it is larger than the limit of '
                            f'{limit} bytes. If it really is the checkpoint,'
                            f' raise the limit with {MAX_BYTES_ENV}=<bytes>.')
                    file.write(block)
                    digest.update(block)
                    bar.update(len(block))
        if hash_prefix is not None and not digest.hexdigest().startswith(
                hash_prefix):
            raise CheckpointFileError(
                f'The download of {quote(url)} does not match the SHA-256 '
                f'prefix {hash_prefix} in its name (its SHA-256 is '
                f'{digest.hexdigest()}): it is damaged or not the published '
                'file. It was not saved or loaded. (If '
                f'{hash_prefix} in the name is no hash, download the file '
                'yourself and give its local path.)')
        os.replace(partial, dst)
    except CheckpointFileError:
        raise
    except OSError as err:  # urllib's URLError/HTTPError, timeouts
        reason = getattr(err, 'reason', err)
        if isinstance(reason, TimeoutError):
            raise CheckpointFileError(
                f'{failed} the server sent nothing for {timeout:g} s (after '
                f'{time.monotonic() - began:.0f} s of download). Check the '
                'URL and the network, wait longer with '
                f'{DOWNLOAD_TIMEOUT_ENV}=<seconds>, or download the file '
                'yourself and give its local path.') from None
        raise CheckpointFileError(
            f'{failed} {err}. Check the URL and the network, or download '
            'the file yourself and give its local path.') from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)


def cached_url_file(url: str,
                    model_dir: Optional[str] = None,
                    progress: bool = True,
                    file_name: Optional[str] = None) -> str:
    """Path of the checked download of ``url`` in torch's hub cache
    (``$TORCH_HOME/hub/checkpoints``), downloading it if it is not there.

    Raises:
        CheckpointFileError: if the download fails, or the file does not
            match the SHA-256 prefix in its name (a cached file that does
            not is not loaded, and stays for the user to look at).
    """
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    filename = file_name or osp.basename(urlparse(url).path)
    cached = osp.join(model_dir, filename)
    prefix = hash_prefix(filename)
    if not osp.exists(cached):
        os.makedirs(model_dir, exist_ok=True)
        sys.stderr.write(f'Downloading: {quote(url)} to {quote(cached)}\n')
        download_url_to_file(url, cached, prefix, progress)
    elif prefix is not None:
        digest = sha256_of(cached)
        if not digest.startswith(prefix):
            raise CheckpointFileError(
                f'Cannot load the checkpoint {quote(url)}: its cached copy '
                f'{quote(cached)} does not match the SHA-256 prefix {prefix} '
                f'in its name (its SHA-256 is {digest}), so it is damaged or '
                'was replaced. It was not loaded; delete it to download the '
                f'file again. (If {prefix} in the name is no hash, give the '
                'local path of a copy of the file instead of the URL.)')
    return cached


def _legacy_zip_member(path: str) -> Optional[zipfile.ZipInfo]:
    """The one member of a zip that torch.hub reads as a zipped checkpoint
    of torch < 1.6, or None if ``path`` is no such zip."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    if len(members) != 1 or members[0].is_dir():
        return None
    return members[0]


def _load_legacy_zip(path: str, member: zipfile.ZipInfo,
                     map_location: Any) -> Any:
    # Checked before anything is inflated: the declared size (from the
    # zip's index) and the first bytes. Then inflated block by block to a
    # temporary file next to the cache (as torch.hub extracts it), never
    # into memory.
    name = f'{path} (member {member.filename})'
    fail = f'Cannot load the checkpoint {quote(name)}:'
    limit = max_checkpoint_bytes()
    if member.file_size > limit:
        raise CheckpointFileError(
            f'{fail} it unpacks to {member.file_size} bytes (the limit is '
            f'{limit}). If it really is the checkpoint, raise the limit '
            f'with {MAX_BYTES_ENV}=<bytes>.')
    with zipfile.ZipFile(path) as archive, archive.open(member) as packed:
        problem = _format_problem(packed.read(HEAD_BYTES), member.filename)
        if problem:
            raise CheckpointFileError(f'{fail} it {problem}.')
    with zipfile.ZipFile(path) as archive, archive.open(member) as packed, \
            tempfile.TemporaryDirectory(dir=osp.dirname(path)) as tmp:
        extracted = osp.join(tmp, 'member.pth')
        with open(extracted, 'wb') as file:
            for block in iter(lambda: packed.read(DOWNLOAD_BLOCK), b''):
                file.write(block)
        return load_checkpoint_file(extracted, map_location, name=name)


def load_url(url: str,
             model_dir: Optional[str] = None,
             map_location: Any = None,
             progress: bool = True,
             check_hash: bool = True,
             file_name: Optional[str] = None) -> Any:
    """``torch.hub.load_state_dict_from_url`` (MMEngine's ``load_url``),
    loading with :func:`load_checkpoint_file`. The hash in the file name
    is always checked (``check_hash`` is accepted for the signature)."""
    del check_hash
    path = cached_url_file(url, model_dir, progress, file_name)
    member = _legacy_zip_member(path)
    if member is not None:
        return _load_legacy_zip(path, member, map_location)
    return load_checkpoint_file(path, map_location)


__all__ = [
    'CheckpointFileError', 'UnsafeCheckpointError', 'allowed_globals',
    'cached_url_file', 'download_timeout', 'download_url_to_file',
    'hash_prefix', 'history_buffer_method',
    'is_weights_only_refusal', 'load_checkpoint_file', 'load_url',
    'mmengine_globals', 'quote', 'refusal_details', 'refusal_message'
]
