# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Read prediction dumps (``tools/test.py --dump FILE.pkl``) without
running what a hostile file asks for.

The dumps are pickles (MMEngine's ``DumpResults``), which people exchange
to fuse scores; ``mmengine.load`` and ``pickle.load`` run any callable a
pickle names. :func:`load_score_file` unpickles only what ``DumpResults``
writes: dicts, lists, tuples, sets, strings, numbers, ``None``,
``OrderedDict``, torch tensors, and numeric numpy arrays and scalars.
Everything else is refused, naming the file and the object, before it is
created:

* numpy data goes through the checking shims of the checkpoint loader
  (:mod:`mmaction_tdx.compat.safe_checkpoint`: numeric dtypes only,
  rebuilt from raw bytes);
* a tensor's storage, which plain pickle stores as a nested
  ``torch.save`` and reads back with ``torch.load(weights_only=False)``,
  is read with the checkpoint loader, weights only.
"""
import codecs
import io
import os
import pickle
from collections import OrderedDict
from typing import Any, Callable, Dict, Tuple

import torch

from mmaction_tdx.compat import safe_checkpoint as sc

__all__ = ['UnsafeScoreFileError', 'load_score_file']


class UnsafeScoreFileError(pickle.UnpicklingError):
    """A score file holds something a prediction dump never holds."""


def _latin1(text: Any, encoding: Any = 'latin1') -> bytes:
    # Pickle protocol 2 writes bytes as ``_codecs.encode(text, 'latin1')``.
    if not (isinstance(text, str) and isinstance(encoding, str)
            and codecs.lookup(encoding).name == 'iso8859-1'):
        raise sc._refuse(f'_codecs.encode({text!r:.60}, {encoding!r:.60}): '
                         'only latin-1 text is allowed.')
    return text.encode('latin1')


def _storage_from_bytes(data: Any) -> Any:
    """``torch.storage._load_from_bytes`` (a tensor's data in a plain
    pickle), loaded weights only and checked to be a storage."""
    if not isinstance(data, bytes):
        raise sc._refuse(f'tensor data of type {type(data).__name__}.')
    storage = sc.load_checkpoint_file(
        data, 'cpu', name='<tensor data>', allow_mmengine=False)
    if not isinstance(storage,
                      (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise sc._refuse(f'tensor data that is a {type(storage).__name__}.')
    return storage


def _allowed() -> Dict[Tuple[str, str], Callable]:
    allowed = {
        ('collections', 'OrderedDict'): OrderedDict,
        ('builtins', 'set'): set,
        ('builtins', 'frozenset'): frozenset,
        ('builtins', 'complex'): complex,
        ('_codecs', 'encode'): _latin1,
        ('torch._utils', '_rebuild_tensor_v2'):
        torch._utils._rebuild_tensor_v2,
        ('torch.storage', '_load_from_bytes'): _storage_from_bytes,
    }
    # numpy's names, answered by the checkpoint loader's shims.
    for shim, name in sc.mmengine_globals():
        module, _, attr = name.rpartition('.')
        if module.startswith('numpy') or name == 'builtins.bytes':
            allowed[(module, attr)] = shim
    return allowed


class _ScoreUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that finds only :func:`_allowed` names (every
    global, ``REDUCE`` and ``NEWOBJ`` goes through ``find_class``)."""

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed().get((module, name))
        if found is None:
            raise UnsafeScoreFileError(
                f'{sc.SHIM_REFUSAL} the global {module}.{name}.')
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeScoreFileError(
            f'{sc.SHIM_REFUSAL} a persistent id {pid!r:.100}.')


def load_score_file(path: str) -> Any:
    """The predictions in ``path`` (a ``tools/test.py --dump`` file),
    unpickled with only the types such dumps hold.

    Raises:
        UnsafeScoreFileError: if the file holds anything else (e.g. a
            callable); nothing of it was run.
        ValueError: if the file is not a readable pickle.
        OSError: if it cannot be opened.
    """
    name = sc.quote(os.fspath(path))
    with open(path, 'rb') as file:
        data = file.read()
    try:
        with sc.allowed_globals(mmengine=False) as state:
            result = _ScoreUnpickler(io.BytesIO(data)).load()
        if state.created:
            result = sc._resolve(result, {})
    except sc.UnsafeCheckpointError as err:
        raise UnsafeScoreFileError(
            f'Refused to load the score file {name}: a tensor in it holds '
            f'{err.details}; the file may be malicious.') from None
    except pickle.UnpicklingError as err:
        message = str(err).split(sc.SHIM_REFUSAL, 1)[-1].split(
            ' MMEngine checkpoints never hold this', 1)[0].strip()
        if sc.is_weights_only_refusal(err) or isinstance(
                err, UnsafeScoreFileError) or str(err).startswith(
                    sc.SHIM_REFUSAL):
            raise UnsafeScoreFileError(
                f'Refused to load the score file {name}: it holds {message} '
                'A prediction dump (tools/test.py --dump) holds only dicts, '
                'lists, strings, numbers, tensors and numeric numpy arrays; '
                'unpickling anything else can run arbitrary code, so the '
                'file may be malicious. Nothing in it was run. If you '
                'trust it, write its scores again with tools/test.py '
                '--dump.') from None
        raise ValueError(f'Cannot read the score file {name}: it is not a '
                         f'readable pickle ({err}).') from None
    except (EOFError, sc.CheckpointFileError, TypeError, ValueError,
            AttributeError, IndexError, KeyError, RecursionError) as err:
        raise ValueError(f'Cannot read the score file {name}: it is '
                         f'truncated or corrupt ({type(err).__name__}: '
                         f'{err}). Write it again with tools/test.py '
                         '--dump.') from None
    return result
