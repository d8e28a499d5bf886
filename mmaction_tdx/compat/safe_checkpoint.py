# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Load checkpoint files and URLs with ``torch.load(weights_only=True)``.

:func:`load_checkpoint_file` is the one place where mmaction_tdx unpickles
a checkpoint (MMEngine's loaders are routed here by
:mod:`mmaction_tdx.compat.torch_load`). It

* passes ``weights_only=True`` explicitly, so neither torch's default nor
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` can turn it off;
* allows what MMEngine's own checkpoints hold (the message hub's
  ``HistoryBuffer`` with numpy arrays and scalars inside,
  ``collections.Counter``) only for the duration of the call, with
  ``torch.serialization.safe_globals``: torch's process-wide list of safe
  globals is never widened, so a user's own ``torch.load`` after
  ``import mmaction_tdx`` behaves exactly as plain torch's;
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
``torch.hub.load_state_dict_from_url`` and then loads the cached file with
:func:`load_checkpoint_file`. Where the file name carries a SHA-256 prefix
(``name-<hash>.pth``, as torchvision's and OpenMMLab's model zoos name
their files) the download is checked by ``torch.hub``'s own check, and a
file found in the cache is checked again before it is read, so a file
planted in the cache is not loaded.

The allowlist is added to torch's list for the call and removed after it
(that list is process-wide, so a ``torch.load`` in another thread at the
same moment would see it too).
"""
import contextlib
import hashlib
import io
import os
import os.path as osp
import pickle
import re
import shlex
import sys
import zipfile
from collections import Counter, OrderedDict
from typing import Any, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import urlparse

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

_created = [0]  # placeholders made so far (to skip resolving when none)


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
        _created[0] += 1
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


@contextlib.contextmanager
def allowed_globals(extra: Iterable[Any] = (),
                    mmengine: bool = True) -> Iterator[None]:
    """Allow :func:`mmengine_globals` (if ``mmengine``) and ``extra`` for
    the duration of the block, with ``torch.serialization.safe_globals``.

    Entries that the user added process-wide under the same names (e.g.
    ``numpy.dtype`` itself) are set aside for the block, so that our
    checking shims, not the real objects, answer those names.
    """
    ours = (mmengine_globals() if mmengine else []) + list(extra)
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


def _resolve(obj: Any, memo: dict) -> Any:
    """``obj`` with every placeholder replaced by its real object, in
    place for lists, dicts and sets (identity and sharing are kept).

    ``memo`` maps ``id(original) -> (original, result)``; holding the
    original keeps its id from being reused during the walk.
    """
    key = id(obj)
    if key in memo:
        return memo[key][1]
    if isinstance(obj, _Pending):
        memo[key] = (obj, None)
        result = obj.resolve(memo)
        memo[key] = (obj, result)
        return result
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
    elif type(obj) in (tuple, frozenset):
        items = [_resolve(item, memo) for item in obj]
        if any(new is not old for new, old in zip(items, obj)):
            memo[key] = (obj, type(obj)(items))
    return memo[key][1]


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


def _has_zip_index(source: Any) -> bool:
    if isinstance(source, str):
        return zipfile.is_zipfile(source)
    start = source.tell()
    try:
        return zipfile.is_zipfile(source)
    finally:
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
    if size > max_checkpoint_bytes():
        raise CheckpointFileError(
            f'{fail} it is too large ({size} bytes; the limit is '
            f'{max_checkpoint_bytes()}). If it really is the checkpoint, '
            f'raise the limit with {MAX_BYTES_ENV}=<bytes>.')
    problem = _format_problem(head, str(name))
    if problem:
        raise CheckpointFileError(f'{fail} it {problem}.')
    if head.startswith(ZIP_MAGIC) and not _has_zip_index(source):
        raise CheckpointFileError(
            f'{fail} it is truncated: the index of its zip archive, at the '
            'end of the file, is missing (an interrupted save or '
            'download). Save or download it again.')
    created = _created[0]
    try:
        with allowed_globals(extra_globals, allow_mmengine):
            checkpoint = torch.load(
                source, map_location=map_location, weights_only=True)
        if _created[0] != created:
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
        try:
            torch.hub.download_url_to_file(url, cached, prefix, progress)
        except RuntimeError as err:
            if 'invalid hash value' not in str(err):
                raise
            raise CheckpointFileError(
                f'The download of {quote(url)} does not match the SHA-256 '
                f'prefix {prefix} in its name ({err}): it is damaged or not '
                'the published file. It was not saved or loaded. (If '
                f'{prefix} in the name is no hash, download the file '
                'yourself and give its local path.)') from None
        except OSError as err:  # urllib's URLError/HTTPError included
            raise CheckpointFileError(
                f'Cannot download the checkpoint {quote(url)} to '
                f'{quote(cached)}: {err}. Check the URL and the network, or '
                'download the file yourself and give its local path.') \
                from None
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


def _legacy_zip_member(path: str) -> Optional[Tuple[str, bytes]]:
    # torch.hub still reads checkpoints that torch < 1.6 saved and a user
    # zipped: a zip of one file. Read in memory, never extracted.
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if len(members) != 1 or members[0].is_dir():
            return None
        if members[0].file_size > max_checkpoint_bytes():
            raise CheckpointFileError(
                f'Cannot load the checkpoint {quote(path)}: its member '
                f'{quote(members[0].filename)} is too large '
                f'({members[0].file_size} bytes).')
        return members[0].filename, archive.read(members[0])


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
        return load_checkpoint_file(
            member[1], map_location, name=f'{path} (member {member[0]})')
    return load_checkpoint_file(path, map_location)


__all__ = [
    'CheckpointFileError', 'UnsafeCheckpointError', 'allowed_globals',
    'cached_url_file', 'hash_prefix', 'history_buffer_method',
    'is_weights_only_refusal', 'load_checkpoint_file', 'load_url',
    'mmengine_globals', 'quote', 'refusal_details', 'refusal_message'
]
