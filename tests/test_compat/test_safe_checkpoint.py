# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Unit tests of :mod:`mmaction_tdx.compat.safe_checkpoint`, in process
and small (the mutation tests run them once per mutant): the checking
shims on crafted arguments and states, the size and format checks at
their boundaries, the refusal messages word for word, and the download
with a fake server (``urlopen`` replaced). The end-to-end cases (hostile
files through MMEngine, the runner, the tools) are in
``tests/test_reliability/test_checkpoint_*.py``."""
import collections
import hashlib
import io
import os
import os.path as osp
import pickle
import struct
import threading
import zipfile

import numpy as np
import pytest
import torch
from conftest import legacy_checkpoint
from mmengine.logging.history_buffer import HistoryBuffer

from mmaction_tdx.compat import safe_checkpoint as sc
from mmaction_tdx.compat.safe_checkpoint import (
    CheckpointFileError,
    UnsafeCheckpointError,
    load_checkpoint_file,
)

MAX_ENV = 'MMACTION_TDX_MAX_CHECKPOINT_BYTES'
TIMEOUT_ENV = 'MMACTION_TDX_DOWNLOAD_TIMEOUT'


def refused(what: str) -> str:
    """A shim's refusal, word for word."""
    return (f'Refused by the checkpoint checks: {what} MMEngine checkpoints '
            'never hold this; the file may be malicious.')


def raises_refusal(what: str):
    return pytest.raises(pickle.UnpicklingError, match=f'^{re_escape(what)}$')


def re_escape(what: str) -> str:
    import re
    return re.escape(refused(what))


# --------------------------------------------------------------------------
# Crafted pickles in torch's legacy (non-zip) format
# --------------------------------------------------------------------------
def unicode(text: str) -> bytes:
    data = text.encode('utf-8', 'surrogatepass')
    return b'X' + struct.pack('<I', len(data)) + data  # BINUNICODE


def saved(obj, zip_format: bool = True) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=zip_format)
    return buffer.getvalue()


@pytest.fixture
def load():
    """An open :func:`allowed_globals` block, in which the shims can be
    called directly."""
    with sc.allowed_globals() as state:
        yield state


def pending_dtype(spec: str, order: str = '|'):
    dtype = sc.checked_dtype(spec)
    dtype.__setstate__((3, order, None, None, None, -1, -1, 0))
    return dtype


# --------------------------------------------------------------------------
# Names, quoting, refusals
# --------------------------------------------------------------------------
def test_quote_paths_and_objects():
    assert sc.quote('a b.pth') == "'a b.pth'"
    assert sc.quote(osp.join('x', 'y.pth')) == 'x/y.pth'
    import pathlib
    assert sc.quote(pathlib.Path('a b')) == "'a b'"
    assert sc.quote(3) == '3'

    class Spelled(os.PathLike):
        """A path whose ``str`` is not its file system path."""

        def __fspath__(self):
            return 'the file'

        def __str__(self):
            return 'Spelled()'

    assert sc.quote(Spelled()) == "'the file'"


def test_error_classes_keep_torch_types():
    assert issubclass(UnsafeCheckpointError, pickle.UnpicklingError)
    assert issubclass(CheckpointFileError, RuntimeError)
    assert UnsafeCheckpointError().details == ''


TORCH_REFUSAL = (
    'Weights only load failed. This file can still be loaded, to do so you '
    'have two options, \x1b[1mdo those steps only if you trust the source '
    'of the checkpoint\x1b[0m. \n\t(1) In PyTorch 2.6, we changed the '
    'default value...\n\n'
    'WeightsUnpickler error: Unsupported global: GLOBAL posix.system was '
    'not an allowed global by default. Please use '
    '`torch.serialization.add_safe_globals([system])` or ...\n\n'
    'Check the documentation of torch.load to learn more.')


@pytest.mark.parametrize('message, cls, expected', [
    (TORCH_REFUSAL, pickle.UnpicklingError, True),
    (TORCH_REFUSAL, RuntimeError, False),
    ('Weights only load failed. Trying to call reduce for unrecognized '
     'function x', pickle.UnpicklingError, True),
    ('Weights only load failed. Can only create new object for x',
     pickle.UnpicklingError, True),
    ('Weights only load failed. Can only build Tensor x',
     pickle.UnpicklingError, True),
    ('Weights only load failed. Unsupported operand 7',
     pickle.UnpicklingError, False),
    (refused('x'), pickle.UnpicklingError, True),
    ('Refused by the checkpoint checks: x', pickle.UnpicklingError, True),
    ('Oops: unsupported global x', pickle.UnpicklingError, False),
])
def test_is_weights_only_refusal(message, cls, expected):
    assert sc.is_weights_only_refusal(cls(message)) is expected


def test_refusal_details_keep_the_specific_words():
    assert sc.refusal_details(pickle.UnpicklingError(TORCH_REFUSAL)) == (
        'Unsupported global: GLOBAL posix.system was not an allowed global '
        'by default.')
    assert sc.refusal_details(pickle.UnpicklingError(refused('x.'))) == \
        refused('x.')
    # Nothing but torch's general paragraph: kept rather than nothing.
    assert sc.refusal_details(ValueError(
        'Weights only load failed.\n\nWeights only load failed again')) == \
        'Weights only load failed. Weights only load failed again'
    assert sc.refusal_details(ValueError(
        ' a \n\n\n\n b ')) == 'a b'
    # Only torch's general paragraphs are dropped; a paragraph keeps its
    # own line breaks and spacing.
    assert sc.refusal_details(ValueError(
        'Weights only load failed.\n\nthe  object\nx')) == 'the  object\nx'


@pytest.mark.parametrize('message, details', [
    # A global's name is the file's to choose: the markers torch puts
    # around the details may appear in it again.
    ('A WeightsUnpickler error: B WeightsUnpickler error: C '
     'WeightsUnpickler error: D', 'B WeightsUnpickler error: C '
     'WeightsUnpickler error: D'),
    ('WeightsUnpickler error: Can only build Tensor x\n\nCheck the '
     'documentation of torch.load to learn more', 'Can only build Tensor x'),
    ('WeightsUnpickler error: A Check the documentation of torch.load B '
     'Check the documentation of torch.load C', 'A'),
    ('WeightsUnpickler error: GLOBAL a Please use `torch.serialization.x` '
     'b Please use `torch.serialization.y`', 'GLOBAL a'),
])
def test_refusal_details_cut_at_the_first_marker(message, details):
    assert sc.refusal_details(pickle.UnpicklingError(message)) == details


def test_refusal_message_verbatim():
    err = pickle.UnpicklingError(refused('x.'))
    assert sc.refusal_message('my dir/ck.pth', err) == (
        "Refused to load the checkpoint 'my dir/ck.pth' as unsafe: it "
        'contains an object that torch.load(weights_only=True) does not '
        f'allow ({refused("x.")}). Only tensors, plain containers and '
        'the MMEngine checkpoint types mmaction_tdx checks are loaded; '
        'unpickling anything else can run arbitrary code, so the file may '
        'be malicious. The object was not created.\n'
        'If you trust the file and its source:\n'
        '  - to initialise or test a model, re-save its weights once as a '
        'plain checkpoint and load that file instead:\n      '
        "python -c 'import sys, torch; c = torch.load(sys.argv[1], "
        'map_location="cpu", weights_only=False); '
        'torch.save(dict(state_dict=c.get("state_dict", c)), '
        "sys.argv[2])' 'my dir/ck.pth' 'my dir/ck.pth.weights.pth'\n"
        '  - to resume from it, allow the extra types it needs with '
        '`torch.serialization.add_safe_globals([...])` in a module listed '
        "in the config's `custom_imports`.")


# --------------------------------------------------------------------------
# Placeholders and the dtype shim
# --------------------------------------------------------------------------
def test_placeholders_only_inside_a_load_and_without_arguments(load):
    assert isinstance(sc._PendingArray(), sc._PendingArray)
    assert load.created == 1
    with raises_refusal("creating PendingArray with (1, 'x')."):
        sc._PendingArray(1, 'x')
    with raises_refusal('creating PendingDtype with ' + repr(
            ('y' * 300, ))[:200] + '.'):
        sc._PendingDtype('y' * 300)
    assert load.created == 1
    token = sc._LOAD.set(None)
    try:
        with raises_refusal('a PendingHistoryBuffer outside a checked '
                            'load.'):
            sc._PendingHistoryBuffer()
    finally:
        sc._LOAD.reset(token)
    with pytest.raises(NotImplementedError):
        sc._Pending.resolve(None, {})


@pytest.mark.parametrize('spec', sorted(sc.NUMERIC_DTYPES))
def test_checked_dtype_accepts_numeric_builtins(load, spec):
    dtype = sc.checked_dtype(spec, False, True)
    assert isinstance(dtype, sc._PendingDtype) and dtype.spec == spec
    assert dtype.resolve({}) == np.dtype(spec)


@pytest.mark.parametrize('spec, order, expected', [
    ('<f4', '|', '<f4'), ('>i8', '|', '>i8'), ('=u2', '|', '=u2'),
    ('|b1', '|', '|b1'), ('f4', '>', '>f4'), ('f8', '<', '<f8'),
    ('i2', '=', '=i2'),
])
def test_checked_dtype_byte_orders(load, spec, order, expected):
    dtype = sc.checked_dtype(spec)
    if order != '|':
        dtype.__setstate__((3, order, None, None, None, -1, -1, 0))
    assert dtype.dtype() == np.dtype(expected)
    assert dtype.dtype().str == np.dtype(expected).str


@pytest.mark.parametrize('args', [
    ('O8', ), ('U4', ), ('S4', ), ('V8', ), ('M8', ), ('f16', ), ('g', ),
    ('', ), ('<<f4', ), ('f4<', ), ('i', ), (b'f4', ), (None, ), ('Xf4', ),
    ('X<f4', ),
    ('f4', 0), ('f4', False, 1), ('f4', None), ('f4', False, None),
])
def test_checked_dtype_refuses_everything_else(load, args):
    full = tuple(args) + (False, True)[len(args) - 1:]
    if args == ('<<f4', ):
        # lstrip takes both: the byte order is then from the state only.
        assert sc.checked_dtype(*args).dtype() == np.dtype('f4')
        return
    with raises_refusal(
            f'numpy.dtype({full[0]!r}, {full[1]!r}, {full[2]!r}): only '
            f'numeric built-in dtypes {sorted(sc.NUMERIC_DTYPES)} are '
            'allowed.'):
        sc.checked_dtype(*args)


VALID_DTYPE_STATES = [
    (3, '<', None, None, None, -1, -1, 0),
    (4, '>', None, None, None, -1, -1, 0),
    (3, '=', None, None, None, -1, -1, 0, None),
    (3, '|', None, None, None, -1, -1, 16),
]


@pytest.mark.parametrize('state', VALID_DTYPE_STATES)
def test_dtype_state_sets_the_byte_order_only(load, state):
    dtype = sc.checked_dtype('i4')
    dtype.__setstate__(state)
    assert dtype.order == state[1]
    assert dtype.dtype().flags == np.dtype('i4').flags


@pytest.mark.parametrize('state', [
    [3, '<', None, None, None, -1, -1, 0],
    (3, '<', None, None, None, -1, -1),
    (3, '<', None, None, None, -1, -1, 0, None, None),
    (2, '<', None, None, None, -1, -1, 0),
    (5, '<', None, None, None, -1, -1, 0),
    (3, 'x', None, None, None, -1, -1, 0),
    (3, '<', (np.dtype('f4'), (2, )), None, None, -1, -1, 0),
    (3, '<', None, ('a', ), None, -1, -1, 0),
    (3, '<', None, None, {}, -1, -1, 0),
    (3, '<', None, None, None, 8, -1, 0),
    (3, '<', None, None, None, -1, 4, 0),
    (3, '<', None, None, None, -1, -1, 0, {'meta': 1}),
    None,
])
def test_dtype_state_refused(load, state):
    dtype = sc.checked_dtype('f8')
    with raises_refusal(f'the state {state!r} of dtype \'f8\' (a numeric '
                        'dtype has a byte order and nothing else).'):
        dtype.__setstate__(state)
    assert dtype.order == '='


# --------------------------------------------------------------------------
# Bytes, scalars and arrays
# --------------------------------------------------------------------------
def test_from_bytes_checks_dtype_length_and_booleans(load):
    f4 = pending_dtype('f4', '<')
    data = np.arange(3, dtype='<f4').tobytes()
    out = sc._from_bytes(f4, data, 3, 'X')
    np.testing.assert_array_equal(out, [0., 1., 2.])
    with raises_refusal("X with dtype 'f4'."):
        sc._from_bytes('f4', data, 3, 'X')
    for bad in (data[:-1], data + b'\x00', bytearray(data), None):
        with raises_refusal(f'X of 3 x float32 from {bad!r:.100} (needs 12 '
                            'bytes).'):
            sc._from_bytes(f4, bad, 3, 'X')
    b1 = pending_dtype('b1')
    np.testing.assert_array_equal(
        sc._from_bytes(b1, b'\x00\x01\x01', 3, 'B'), [False, True, True])
    for bad in (b'\x02\x01', b'\x01\xff', b'\x00\x80', b'\x00 ', b'X\x01',
                b'\x00X'):
        with raises_refusal('B: booleans other than 0 and 1.'):
            sc._from_bytes(b1, bad, 2, 'B')
    # A big-endian dtype reads its bytes big-endian.
    out = sc._from_bytes(pending_dtype('u2', '>'), b'\x01\x02', 1, 'S')
    assert out.tolist() == [0x0102]


def test_scalar_and_bytes_shims(load):
    value = sc.checked_scalar(pending_dtype('i2', '<'), b'\x05\x01')
    assert value == 0x0105 and isinstance(value, np.int16)
    with raises_refusal('a numpy scalar of 1 x int16 from None (needs 2 '
                        'bytes).'):
        sc.checked_scalar(pending_dtype('i2'))
    assert sc.empty_bytes() == b''
    with raises_refusal("bytes(b'ab',): only bytes() is allowed."):
        sc.empty_bytes(b'ab')
    with raises_refusal("numpy.ndarray(1, 'x'): arrays are only rebuilt "
                        "through numpy's array pickling."):
        sc._ndarray_name(1, 'x')


@pytest.mark.parametrize('args', [
    (np.ndarray, (0, ), b'b'),
    ('ndarray', (0, ), b'b'),
    (sc._ndarray_name, (1, ), b'b'),
    (sc._ndarray_name, [0], b'b'),
    (sc._ndarray_name, (0, ), b'c'),
    (sc._ndarray_name, (0, ), 'b'),
])
def test_reconstruct_only_plain_arrays(load, args):
    with raises_refusal(f'_reconstruct({args[0]!r}, {args[1]!r}, '
                        f'{args[2]!r}): only plain numpy arrays are '
                        'allowed.'):
        sc.checked_reconstruct(*args)


def array_state(shape, spec='<f4', fortran=False, data=None, version=1):
    count = int(np.prod(shape))
    if data is None:
        data = np.arange(count, dtype=spec).tobytes()
    return (version, shape, pending_dtype(spec.lstrip('<>|='),
                                          spec[0] if spec[0] in '<>' else
                                          '|'), fortran, data)


@pytest.mark.parametrize('shape, fortran', [
    ((2, 3), False), ((2, 3), True), ((), False), ((0, 4), False),
    ((1, ) * 32, False), ((4, ), True),
])
def test_array_state_rebuilds_the_array(load, shape, fortran):
    array = sc.checked_reconstruct(sc._ndarray_name, (0, ), b'b')
    state = array_state(shape, fortran=fortran)
    array.__setstate__(state)
    count = int(np.prod(shape))
    expected = np.arange(count, dtype='<f4').reshape(
        shape, order='F' if fortran else 'C')
    got = array.resolve({})
    np.testing.assert_array_equal(got, expected)
    assert got.shape == shape and got.flags.writeable
    assert got.flags.f_contiguous == (fortran or got.ndim <= 1 or count
                                      <= 1 or got.flags.f_contiguous)
    if fortran and len(shape) > 1:
        assert got.flags.f_contiguous and not got.flags.c_contiguous


@pytest.mark.parametrize('mutate', [
    lambda s: list(s), lambda s: s[:4], lambda s: s + (None, ),
    lambda s: (2, ) + s[1:], lambda s: (0, ) + s[1:],
    lambda s: (1, [2, 3]) + s[2:], lambda s: (1, (2, -3)) + s[2:],
    lambda s: (1, (2, 3.0)) + s[2:], lambda s: (1, (True, 3)) + s[2:],
    lambda s: (1, (np.int64(2), 3)) + s[2:], lambda s: (1, (1, ) * 33) +
    s[2:], lambda s: s[:3] + (1, ) + s[4:], lambda s: s[:3] +
    (None, ) + s[4:]
],
                         ids=[
                             'list', 'short', 'long', 'version2', 'version0',
                             'shape_list', 'negative', 'float_dim',
                             'bool_dim', 'numpy_dim', '33_dims',
                             'fortran_int', 'fortran_none'
                         ])
def test_array_state_refused(load, mutate):
    state = mutate(array_state((2, 3)))
    array = sc._PendingArray()
    with raises_refusal(f'the array state {state!r:.200}.'):
        array.__setstate__(state)
    with raises_refusal('an array without its data.'):
        array.resolve({})


def test_array_state_data_checked(load):
    array = sc._PendingArray()
    state = array_state((2, 3))
    with raises_refusal(
            f'an array of shape (2, 3) of 6 x float32 from '
            f'{state[4][:-1]!r:.100} (needs 24 bytes).'):
        array.__setstate__(state[:4] + (state[4][:-1], ))
    # A huge declared shape with no data: refused by the count, before
    # anything is allocated.
    with raises_refusal("an array of shape (65536, 65536, 65536) of "
                        "281474976710656 x float32 from b'' (needs "
                        "1125899906842624 bytes)."):
        array.__setstate__(array_state((1 << 16, ) * 3, data=b''))
    # A product that wraps around in int64 (2**64 -> 0) is still counted
    # exactly: no empty array of a huge shape.
    with raises_refusal("an array of shape (4294967296, 4294967296) of "
                        "18446744073709551616 x float32 from b'' (needs "
                        "73786976294838206464 bytes)."):
        array.__setstate__(array_state((1 << 32, ) * 2, data=b''))


# --------------------------------------------------------------------------
# HistoryBuffer
# --------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['min', 'max', 'current', 'mean'])
def test_history_buffer_method_allows_the_statistics(name):
    assert sc.history_buffer_method(sc._PendingHistoryBuffer, name) is \
        vars(HistoryBuffer)[name]


@pytest.mark.parametrize('owner, name', [
    (HistoryBuffer, 'min'), (sc._PendingHistoryBuffer, 'update'),
    (sc._PendingHistoryBuffer, '__class__'), (sc._PendingHistoryBuffer,
                                              b'min'),
    (os, 'system'), (sc._PendingHistoryBuffer, ['min']),
])
def test_history_buffer_method_refuses_the_rest(owner, name):
    with raises_refusal(f'getattr({owner!r}, {name!r}): only the '
                        "statistics methods ['min', 'max', 'current', "
                        "'mean'] of mmengine HistoryBuffer may be looked "
                        'up.'):
        sc.history_buffer_method(owner, name)


def test_known_statistics_are_mmengines():
    assert sc.known_statistics() == {
        n: vars(HistoryBuffer)[n]
        for n in ('min', 'max', 'current', 'mean')
    }


def buffer_state(**changes):
    state = dict(
        max_length=5,
        _log_history=np.array([1., 2.]),
        _count_history=np.array([1, 1]),
        statistics_methods={'min': vars(HistoryBuffer)['min']})
    state.update(changes)
    return {k: v for k, v in state.items() if v is not ...}


def test_history_buffer_rebuilt_from_checked_state(load):
    pending = sc._PendingHistoryBuffer()
    state = buffer_state()
    pending.__setstate__(state)
    buffer = pending.resolve({})
    assert type(buffer) is HistoryBuffer and buffer.max_length == 5
    np.testing.assert_array_equal(buffer._log_history, [1., 2.])
    assert buffer.mean() == 1.5 and buffer.current() == 2.
    assert vars(buffer).keys() == {'max_length', '_log_history',
                                   '_count_history'}
    # The smallest buffer: max_length 1.
    pending = sc._PendingHistoryBuffer()
    pending.__setstate__(buffer_state(max_length=1))
    assert pending.resolve({}).max_length == 1
    # Without statistics_methods (an older MMEngine) it loads as well.
    pending = sc._PendingHistoryBuffer()
    pending.__setstate__(buffer_state(statistics_methods=...))
    assert pending.resolve({}).max_length == 5
    # Integer logs are numeric too.
    pending = sc._PendingHistoryBuffer()
    pending.__setstate__(
        buffer_state(_log_history=np.array([3], dtype=np.uint8),
                     _count_history=np.array([1], dtype=np.int32)))
    assert pending.resolve({}).max() == 3


@pytest.mark.parametrize('state, shown', [
    ([('max_length', 1)], [('max_length', 1)]),
    ([('b', 1), ('a', 2)], [('b', 1), ('a', 2)]),
    (None, None),
    (collections.OrderedDict(buffer_state()),
     sorted(buffer_state())),
    (buffer_state(extra=1), sorted(buffer_state(extra=1))),
    (buffer_state(max_length=...), sorted(buffer_state(max_length=...))),
    (buffer_state(_log_history=...), sorted(buffer_state(
        _log_history=...))),
    (buffer_state(_count_history=...),
     sorted(buffer_state(_count_history=...))),
])
def test_history_buffer_state_keys_refused(load, state, shown):
    with raises_refusal(f'HistoryBuffer state with keys {shown!r:.200}.'):
        sc._PendingHistoryBuffer().__setstate__(state)


@pytest.mark.parametrize('methods', [
    {'min': vars(HistoryBuffer)['max']},
    {'min': print},
    {'median': vars(HistoryBuffer)['min']},
    collections.OrderedDict(min=vars(HistoryBuffer)['min']),
    [('min', vars(HistoryBuffer)['min'])],
])
def test_history_buffer_statistics_methods_refused(load, methods):
    with raises_refusal(
            f'HistoryBuffer statistics_methods {methods!r:.300}: only '
            "MMEngine's own ['min', 'max', 'current', 'mean'], each under "
            'its own name, are allowed (they would replace the methods of '
            'every HistoryBuffer in the process).'):
        sc._PendingHistoryBuffer().__setstate__(
            buffer_state(statistics_methods=methods))


@pytest.mark.parametrize('changes', [
    dict(max_length=0), dict(max_length=-1), dict(max_length=True),
    dict(max_length=5.0), dict(_log_history=[1., 2.]),
    dict(_log_history=np.array([[1., 2.]])),
    dict(_log_history=np.array([True, False])),
    dict(_log_history=np.array([1j, 2j])),
    dict(_count_history=np.array([1])),
])
def test_history_buffer_data_refused(load, changes):
    pending = sc._PendingHistoryBuffer()
    pending.__setstate__(buffer_state(**changes))
    with raises_refusal('HistoryBuffer data other than two 1-D numeric '
                        'arrays of the same length and a positive '
                        'max_length.'):
        pending.resolve({})


def test_history_buffer_holding_itself_refused(load):
    pending = sc._PendingHistoryBuffer()
    pending.__setstate__(buffer_state(_log_history=pending))
    with raises_refusal('HistoryBuffer data other than two 1-D numeric '
                        'arrays of the same length and a positive '
                        'max_length.'):
        sc._resolve({'hub': pending}, {})


def test_history_buffer_without_state_refused(load):
    with raises_refusal('a HistoryBuffer without its state.'):
        sc._PendingHistoryBuffer().resolve({})


def test_history_buffer_resolves_its_pending_arrays(load):
    logs = sc._PendingArray()
    logs.__setstate__(array_state((2, )))
    pending = sc._PendingHistoryBuffer()
    pending.__setstate__(buffer_state(_log_history=logs))
    buffer = pending.resolve({})
    np.testing.assert_array_equal(buffer._log_history, [0., 1.])


# --------------------------------------------------------------------------
# The allowlist
# --------------------------------------------------------------------------
def test_mmengine_globals_names():
    pairs = sc.mmengine_globals()
    names = {name: shim for shim, name in pairs}
    assert len(names) == len(pairs) == 12
    expected = {
        'mmengine.logging.history_buffer.HistoryBuffer':
        sc._PendingHistoryBuffer,
        'collections.Counter': collections.Counter,
        'builtins.getattr': sc.history_buffer_method,
        'builtins.bytes': sc.empty_bytes,
        'numpy.dtype': sc.checked_dtype,
        'numpy.ndarray': sc._ndarray_name,
        'mmaction_tdx checkpoint placeholder\ndtype': sc._PendingDtype,
        'mmaction_tdx checkpoint placeholder\narray': sc._PendingArray,
    }
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        expected[f'{module}._reconstruct'] = sc.checked_reconstruct
        expected[f'{module}.scalar'] = sc.checked_scalar
    assert names == expected


def test_global_names():
    assert sc._global_name((print, 'a.b')) == 'a.b'
    assert sc._global_name(collections.OrderedDict) == \
        'collections.OrderedDict'
    assert sc._global_name(sc._LoadState) == \
        'mmaction_tdx.compat.safe_checkpoint._LoadState'


class Point:

    def __init__(self, x=0):
        self.x = x


def test_allowed_globals_scoped_to_the_block_and_thread():
    data = saved({'p': Point(3)})
    lookup = torch._weights_only_unpickler._get_user_allowed_globals
    torch_list = torch.serialization.get_safe_globals()
    with sc.allowed_globals([Point]) as state:
        assert isinstance(state, sc._LoadState) and state.created == 0
        allowed = lookup()
        assert allowed[f'{__name__}.Point'] is Point
        assert allowed['numpy.dtype'] is sc.checked_dtype
        assert torch.load(io.BytesIO(data), weights_only=True)['p'].x == 3
        seen = []
        worker = threading.Thread(target=lambda: seen.append(lookup()))
        worker.start()
        worker.join()
        assert f'{__name__}.Point' not in seen[0]
        assert 'numpy.dtype' not in seen[0]
    assert f'{__name__}.Point' not in lookup()
    assert sc._LOAD.get() is None
    with sc.allowed_globals(mmengine=False):
        assert 'numpy.dtype' not in lookup()
    with sc.allowed_globals([(print, 'x.y')], mmengine=False):
        assert lookup()['x.y'] is print
    assert torch.serialization.get_safe_globals() == torch_list
    assert getattr(lookup, '_mmaction_tdx_scoped') is True
    assert sc._scope_torch_lookup() is True


def test_allowed_globals_fallback_widens_torch_list(monkeypatch):
    """Without torch's lookup to wrap, our entries are added to torch's
    list for the block, the user's entries under our names set aside
    and put back after."""
    monkeypatch.setattr(sc, '_scope_torch_lookup', lambda: False)
    before = torch.serialization.get_safe_globals()
    user = [np.dtype, Point]
    torch.serialization.add_safe_globals(user)
    try:
        with sc.allowed_globals() as state:
            inside = torch.serialization.get_safe_globals()
            assert Point in inside and np.dtype not in inside
            assert (sc.checked_dtype, 'numpy.dtype') in inside
            assert isinstance(state, sc._LoadState)
        assert set(torch.serialization.get_safe_globals()) == set(before +
                                                                  user)
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals([Point])
        with sc.allowed_globals():
            inside = torch.serialization.get_safe_globals()
            assert Point in inside
            assert (sc.checked_dtype, 'numpy.dtype') in inside
        assert torch.serialization.get_safe_globals() == [Point]
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


def test_scope_lookup_installed_once(monkeypatch):
    """Installed on a torch whose lookup is plain (as on the first load
    of a process): the wrapper answers torch's list plus, inside one of
    our loads only, ours (ours win under the same name)."""
    unpickler = torch._weights_only_unpickler
    current = unpickler._get_user_allowed_globals
    plain = getattr(current, '__wrapped__', current)
    monkeypatch.setattr(unpickler, '_get_user_allowed_globals', plain)
    assert sc._scope_torch_lookup() is True
    scoped = unpickler._get_user_allowed_globals
    assert scoped is not plain and scoped.__wrapped__ is plain
    assert getattr(scoped, '_mmaction_tdx_scoped') is True
    assert sc._scope_torch_lookup() is True
    assert unpickler._get_user_allowed_globals is scoped  # not wrapped twice
    assert scoped() == plain()
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([np.dtype])
    try:
        assert scoped()['numpy.dtype'] is np.dtype
        with sc.allowed_globals([Point]):
            assert scoped()['numpy.dtype'] is sc.checked_dtype
            assert scoped()[f'{__name__}.Point'] is Point
            assert plain()['numpy.dtype'] is np.dtype  # torch's unchanged
            assert f'{__name__}.Point' not in plain()
        assert scoped()['numpy.dtype'] is np.dtype
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)
    out = load_checkpoint_file(saved({'a': np.arange(2.), 'p': Point(5)}),
                               extra_globals=[Point])
    assert out['a'].tolist() == [0., 1.] and out['p'].x == 5


def test_scope_lookup_refuses_another_torch(monkeypatch):
    unpickler = torch._weights_only_unpickler
    monkeypatch.delattr(unpickler, '_get_user_allowed_globals')
    assert sc._scope_torch_lookup() is False

    def plain():
        return {}

    monkeypatch.setattr(unpickler, '_get_user_allowed_globals', plain,
                        raising=False)
    monkeypatch.setattr(unpickler.Unpickler, 'load', lambda self: None)
    assert sc._scope_torch_lookup() is False
    assert unpickler._get_user_allowed_globals is plain
    # An unpickler whose load is not Python code, that has none, or no
    # Unpickler at all.
    monkeypatch.setattr(unpickler.Unpickler, 'load', len)
    assert sc._scope_torch_lookup() is False
    monkeypatch.setattr(unpickler, 'Unpickler', object)
    assert sc._scope_torch_lookup() is False
    monkeypatch.delattr(unpickler, 'Unpickler')
    assert sc._scope_torch_lookup() is False
    assert unpickler._get_user_allowed_globals is plain


# --------------------------------------------------------------------------
# Resolving placeholders
# --------------------------------------------------------------------------
def pending_array(load, values):
    array = sc._PendingArray()
    array.__setstate__(
        array_state((len(values), ),
                    data=np.array(values, dtype='<f4').tobytes()))
    return array


def test_resolve_replaces_placeholders_everywhere(load):
    a = pending_array(load, [1.])
    shared = [a]
    counter = collections.Counter({'x': 2})
    ordered = collections.OrderedDict(k=a)
    ordered.extra = {'y': a}
    tree = {
        'list': shared,
        'again': shared,
        'tuple': (a, 1),
        'plain': (1, 2),
        'frozen': frozenset([1]),
        'set': {1, 2},
        'counter': counter,
        'ordered': ordered,
        'nested': [[{'deep': (a, )}]],
    }
    plain = tree['plain']
    out = sc._resolve(tree, {})
    assert out is tree and out['list'] is shared and out['again'] is shared
    assert isinstance(shared[0], np.ndarray) and shared[0] is \
        out['tuple'][0] and out['nested'][0][0]['deep'][0] is shared[0]
    assert out['tuple'][1] == 1 and type(out['tuple']) is tuple
    assert out['plain'] is plain and out['frozen'] == frozenset([1])
    assert out['set'] == {1, 2} and out['counter'] == {'x': 2}
    assert out['ordered']['k'] is shared[0]
    assert out['ordered'].extra['y'] is shared[0]


def test_resolve_keys_sets_and_frozensets(load):
    dtype = pending_dtype('i2', '<')
    mapping = {dtype: 1, 'b': 2}
    out = sc._resolve(mapping, {})
    assert out is mapping and out == {np.dtype('<i2'): 1, 'b': 2}
    assert list(out) == [np.dtype('<i2'), 'b']
    only = {pending_dtype('f8'): 'x'}
    assert sc._resolve(only, {}) == {np.dtype('f8'): 'x'}
    assert len(only) == 1
    # Keys unchanged: a Counter keeps its counts (no update()).
    counter = collections.Counter({'a': 2, pending_dtype('f4'): 3})
    assert sc._resolve(counter, {}) == {'a': 2, np.dtype('f4'): 3}
    counts = collections.Counter({'a': 2})
    assert sc._resolve(counts, {}) == {'a': 2}
    items = {pending_dtype('u1'), 5}
    assert sc._resolve(items, {}) == {np.dtype('u1'), 5}
    frozen = frozenset([pending_dtype('u2'), 6])
    out = sc._resolve(frozen, {})
    assert type(out) is frozenset and out == {np.dtype('u2'), 6}


def test_resolve_refuses_a_tuple_in_its_own_list(load):
    a = pending_array(load, [1.])
    lst = []
    tup = (a, lst)
    lst.append(tup)
    with raises_refusal('a tuple that contains itself (through a list or '
                        'dict) next to numpy data or a HistoryBuffer: it '
                        'cannot be rebuilt with its own contents.'):
        sc._resolve({'t': tup}, {})
    # Without a placeholder inside, such a cycle is kept as it is.
    lst2 = []
    tup2 = (1, lst2)
    lst2.append(tup2)
    out = sc._resolve({'t': tup2}, {})
    assert out['t'] is tup2 and lst2[0] is tup2


def test_resolve_shares_one_result_per_placeholder(load):
    a = pending_array(load, [1., 2.])
    out = sc._resolve([a, (a, ), {'k': a}], {})
    assert out[0] is out[1][0] is out[2]['k']


# --------------------------------------------------------------------------
# Sizes and formats
# --------------------------------------------------------------------------
def test_max_checkpoint_bytes(monkeypatch):
    monkeypatch.delenv(MAX_ENV, raising=False)
    assert sc.max_checkpoint_bytes() == 32 * 1024**3
    monkeypatch.setenv(MAX_ENV, '')
    assert sc.max_checkpoint_bytes() == 32 * 1024**3
    monkeypatch.setenv(MAX_ENV, '123')
    assert sc.max_checkpoint_bytes() == 123
    monkeypatch.setenv(MAX_ENV, '1e9')
    with pytest.raises(ValueError) as info:
        sc.max_checkpoint_bytes()
    assert str(info.value) == (
        "MMACTION_TDX_MAX_CHECKPOINT_BYTES='1e9' is not a number of bytes; "
        'set it to an integer, e.g. 34359738368.')
    assert info.value.__suppress_context__


@pytest.mark.parametrize('head, name, expected', [
    (b'PK\x03\x04rest', 'a.pth', None),
    (b'\x80\x02rest', 'a.pth', None),
    (bytes(257) + b'ustar' + bytes(250), 'a.tar', None),
    (bytes(257) + b'ustaR' + bytes(250), 'a.tar',
     "is not a PyTorch checkpoint (it starts with "
     "b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
     "\\x00\\x00\\x00', not with a zip archive or a pickle)"),
    (b'anything', 'a.safetensors', None),
    (b'anything', 'a.safetensors.pth', 'is not a PyTorch checkpoint (it '
     "starts with b'anything', not with a zip archive or a pickle)"),
    (b' \n<html>', 'a.pth', 'is a web page (HTML/XML), not a checkpoint: a '
     'download returned an error or login page instead of the file. Check '
     'the URL and download it again'),
    (b'12345678{"a"', 'a.pth', 'is a safetensors file, not a torch.save '
     'checkpoint: give it the suffix .safetensors, or convert it with '
     'safetensors.torch.load_file and torch.save'),
    (b'12345678{"', 'a.pth', 'is a safetensors file, not a torch.save '
     'checkpoint: give it the suffix .safetensors, or convert it with '
     'safetensors.torch.load_file and torch.save'),
    (b'12345678{', 'a.pth', 'is not a PyTorch checkpoint (it starts with '
     "b'12345678{', not with a zip archive or a pickle)"),
    (b'0123456789abcdefXYZ', 'a.pth', 'is not a PyTorch checkpoint (it '
     "starts with b'0123456789abcdef', not with a zip archive or a "
     'pickle)'),
    (b'PK\x05\x06', 'a.pth', "is not a PyTorch checkpoint (it starts with "
     "b'PK\\x05\\x06', not with a zip archive or a pickle)"),
])
def test_format_problem(head, name, expected):
    assert sc._format_problem(head, name) == expected


def zip_bytes(members: dict, compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_unpacked_bytes(tmp_path):
    data = zip_bytes({'a': b'12345', 'b': bytes(100)}, zipfile.ZIP_DEFLATED)
    path = tmp_path / 'z.pth'
    path.write_bytes(data)
    assert sc._zip_unpacked_bytes(str(path)) == 105
    file = io.BytesIO(b'xyz' + data)
    file.seek(3)
    assert sc._zip_unpacked_bytes(file) == 105
    assert file.tell() == 3
    truncated = io.BytesIO(data[:-10])
    truncated.seek(2)
    assert sc._zip_unpacked_bytes(truncated) is None
    assert truncated.tell() == 2
    (tmp_path / 'bad.pth').write_bytes(data[:20])
    assert sc._zip_unpacked_bytes(str(tmp_path / 'bad.pth')) is None
    assert sc._zip_unpacked_bytes(str(tmp_path / 'missing.pth')) is None


@pytest.mark.parametrize('err, expected', [
    (EOFError(), 'is truncated: it ends before the checkpoint does (an '
     'interrupted save or download). Save or download it again. '
     '(EOFError:)'),
    (RuntimeError('PytorchStreamReader failed reading zip archive: failed '
                  'finding central directory'),
     'is truncated: it ends before the checkpoint does (an interrupted save'
     ' or download). Save or download it again. (RuntimeError: '
     'PytorchStreamReader failed reading zip archive: failed finding '
     'central directory)'),
    (pickle.UnpicklingError('Weights only load failed.\n\nWeightsUnpickler '
                            'error: Ran out of input'),
     'is truncated: it ends before the checkpoint does (an interrupted save'
     ' or download). Save or download it again. (UnpicklingError: Ran out '
     'of input)'),
    (RuntimeError('x Unexpected EOF y'), 'is truncated: it ends before the '
     'checkpoint does (an interrupted save or download). Save or download '
     'it again. (RuntimeError: x Unexpected EOF y)'),
    (RuntimeError('pickle data was truncated'), 'is truncated: it ends '
     'before the checkpoint does (an interrupted save or download). Save or'
     ' download it again. (RuntimeError: pickle data was truncated)'),
    (RuntimeError('an EOFError inside'), 'is truncated: it ends before the '
     'checkpoint does (an interrupted save or download). Save or download '
     'it again. (RuntimeError: an EOFError inside)'),
    (RuntimeError('this is a TorchScript archive'), 'is a TorchScript '
     'archive (torch.jit.save), not a checkpoint: load it with '
     'torch.jit.load'),
    (pickle.UnpicklingError('invalid load key, x.'), 'is corrupt: it is '
     'not a readable PyTorch checkpoint. Save or download it again. '
     '(UnpicklingError: invalid load key, x.)'),
    (zipfile.BadZipFile('bad'), 'is corrupt: it is not a readable PyTorch '
     'checkpoint. Save or download it again. (BadZipFile: bad)'),
    (OSError('os'), 'is corrupt: it is not a readable PyTorch checkpoint. '
     'Save or download it again. (OSError: os)'),
    (ValueError('v'), 'is corrupt: it is not a readable PyTorch '
     'checkpoint. Save or download it again. (ValueError: v)'),
    (TypeError('t'), 'is corrupt: it is not a readable PyTorch checkpoint.'
     ' Save or download it again. (TypeError: t)'),
    (KeyError('k'), 'is corrupt: it is not a readable PyTorch checkpoint. '
     "Save or download it again. (KeyError: 'k')"),
    (IndexError('i'), 'is corrupt: it is not a readable PyTorch '
     'checkpoint. Save or download it again. (IndexError: i)'),
    (AttributeError('a'), 'is corrupt: it is not a readable PyTorch '
     'checkpoint. Save or download it again. (AttributeError: a)'),
] + [(RuntimeError(f'x {phrase} y'), 'is corrupt: it is not a readable '
      'PyTorch checkpoint. Save or download it again. (RuntimeError: x '
      f'{phrase} y)')
     for phrase in ('PytorchStreamReader', 'invalid magic number', 'CORRUPT',
                    'invalid load key', 'unpickling stack underflow',
                    'unsupported operand', 'could not find MARK', 'crc')] + [
    (MemoryError(), 'does not fit in memory; load it on a machine with more '
     'memory'),
    (RuntimeError('CUDA is not available'), None),
])
def test_read_problem(err, expected):
    assert sc._read_problem(err) == expected


# --------------------------------------------------------------------------
# load_checkpoint_file
# --------------------------------------------------------------------------
@pytest.mark.parametrize('zip_format', [True, False])
def test_loads_tensors_and_numpy(tmp_path, zip_format):
    buffer = HistoryBuffer()
    buffer.update(2.0)
    obj = dict(w=torch.arange(3.), meta=dict(
        a=np.float32(1.5), b=np.arange(4, dtype='>i2').reshape(2, 2),
        c=np.array([True, False]), e=np.zeros((0, 3)),
        f=np.asfortranarray(np.arange(6.).reshape(2, 3))),
        hub={'loss': buffer}, counts=collections.Counter(a=2))
    path = tmp_path / 'ck.pth'
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    out = load_checkpoint_file(str(path))
    assert torch.equal(out['w'], obj['w'])
    for key, value in obj['meta'].items():
        np.testing.assert_array_equal(out['meta'][key], value)
        assert out['meta'][key].dtype == value.dtype
    assert out['meta']['f'].flags.f_contiguous
    assert type(out['hub']['loss']) is HistoryBuffer
    assert out['hub']['loss'].current() == 2.0
    assert out['counts'] == collections.Counter(a=2)
    # Bytes, a file object at an offset, a PathLike: the same.
    data = path.read_bytes()
    assert load_checkpoint_file(data)['meta']['a'] == 1.5
    file = io.BytesIO(b'junk' + data)
    file.seek(4)
    assert load_checkpoint_file(file)['meta']['a'] == 1.5
    assert load_checkpoint_file(path, 'cpu')['meta']['a'] == 1.5


def test_plain_checkpoint_skips_resolving(monkeypatch):
    def no_resolve(*args):
        raise AssertionError('resolved')

    monkeypatch.setattr(sc, '_resolve', no_resolve)
    assert load_checkpoint_file(saved({'a': torch.ones(1)}))['a'] == 1


def test_allow_mmengine_false_refuses_numpy():
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_file(saved({'a': np.float32(1)}),
                             allow_mmengine=False, name='n.pth')
    assert 'numpy' in info.value.details
    assert str(info.value).startswith(
        'Refused to load the checkpoint n.pth as unsafe: it contains an '
        'object that torch.load(weights_only=True) does not allow '
        f'({info.value.details}).')
    assert info.value.__suppress_context__


def test_extra_globals_allowed_for_the_call_only():
    data = saved({'p': Point(4)})
    assert load_checkpoint_file(data, extra_globals=[Point])['p'].x == 4
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(data)


def test_missing_file_named(tmp_path):
    path = str(tmp_path / 'no file.pth')
    with pytest.raises(FileNotFoundError) as info:
        load_checkpoint_file(path)
    assert str(info.value) == f"'{path}' can not be found (no such file)."
    with pytest.raises(FileNotFoundError):
        load_checkpoint_file(str(tmp_path))  # a directory


def test_user_home_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    torch.save({'a': 1}, tmp_path / 'h.pth')
    assert load_checkpoint_file('~/h.pth') == {'a': 1}
    with pytest.raises(CheckpointFileError) as info:
        (tmp_path / 'e.pth').write_bytes(b'')
        load_checkpoint_file('~/e.pth')
    assert str(info.value).startswith(
        f'Cannot load the checkpoint {tmp_path}/e.pth: it is empty')


@pytest.mark.parametrize('source', ['path', 'bytes', 'file'])
def test_empty_file_verbatim(tmp_path, source):
    path = tmp_path / 'e.pth'
    path.write_bytes(b'')
    arg = dict(path=str(path), bytes=b'', file=io.BytesIO(b''))[source]
    name = str(path) if source == 'path' else '<checkpoint data>'
    with pytest.raises(CheckpointFileError) as info:
        load_checkpoint_file(arg)
    assert str(info.value) == (
        f"Cannot load the checkpoint {sc.quote(name)}: it is empty (0 "
        'bytes), e.g. an interrupted save or download. Save or download it '
        'again.')


@pytest.mark.parametrize('zip_format', [True, False])
def test_size_limit_boundary(tmp_path, monkeypatch, zip_format):
    data = saved({'a': 1}, zip_format)
    path = tmp_path / 'ck.pth'
    path.write_bytes(data)
    monkeypatch.setenv(MAX_ENV, str(len(data)))
    if zip_format:  # the unpacked size is below the file's
        assert sc._zip_unpacked_bytes(str(path)) < len(data)
    assert load_checkpoint_file(str(path)) == {'a': 1}
    assert load_checkpoint_file(data, name='x') == {'a': 1}
    monkeypatch.setenv(MAX_ENV, str(len(data) - 1))
    for arg in (str(path), data):
        with pytest.raises(CheckpointFileError) as info:
            load_checkpoint_file(arg, name='ck.pth')
        assert str(info.value) == (
            f'Cannot load the checkpoint ck.pth: it is too large '
            f'({len(data)} bytes; the limit is {len(data) - 1}). If it '
            'really is the checkpoint, raise the limit with '
            'MMACTION_TDX_MAX_CHECKPOINT_BYTES=<bytes>.')


@pytest.mark.parametrize('source', ['path', 'file'])
def test_too_large_file_refused_after_reading_its_head(tmp_path, monkeypatch,
                                                       source):
    """Only the first 512 bytes are read before the size is checked: a
    20 MB file (sparse, no disk used) over a 1 MB limit allocates
    nothing near its size."""
    import tracemalloc
    path = tmp_path / 'big.pth'
    with open(path, 'wb') as file:
        file.write(b'\x80\x02')
        file.truncate(20 << 20)
    monkeypatch.setenv(MAX_ENV, str(1 << 20))
    arg = str(path) if source == 'path' else open(path, 'rb')
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointFileError, match='it is too large'):
            load_checkpoint_file(arg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        if source == 'file':
            arg.close()
    assert peak < 1 << 20, peak


def test_safetensors_name_goes_to_torch(tmp_path):
    """A ``.safetensors`` file is torch.load's to read (through the
    safetensors package), not refused by its first bytes."""
    path = tmp_path / 'm.safetensors'
    path.write_bytes(b'\x10' + bytes(7) + b'{"a": 1}')
    with pytest.raises(Exception) as info:
        load_checkpoint_file(str(path))
    assert 'not a PyTorch checkpoint' not in str(info.value)
    assert 'safetensors file, not' not in str(info.value)


def test_map_location_passed_to_torch():
    out = load_checkpoint_file(saved({'w': torch.ones(2)}), 'meta')
    assert out['w'].device.type == 'meta'
    out = load_checkpoint_file(
        saved({'w': torch.ones(2)}), lambda storage, location: storage)
    assert out['w'].device.type == 'cpu'


def test_weights_only_cannot_be_turned_off(monkeypatch):
    """``weights_only=True`` is passed explicitly: torch's default, which
    the environment can change, is never used."""
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(saved({'p': Point(1)}))


def test_file_object_size_counts_from_its_position(monkeypatch):
    data = saved({'a': 1})
    file = io.BytesIO(bytes(1000) + data)
    file.seek(1000)
    monkeypatch.setenv(MAX_ENV, str(len(data)))
    assert load_checkpoint_file(file) == {'a': 1}


def test_zip_unpacked_limit_boundary(monkeypatch):
    """A zip's declared uncompressed size counts, at the byte."""
    data = zip_bytes({'archive/data.pkl': pickle.dumps({}, protocol=2),
                      'archive/big': bytes(5000)}, zipfile.ZIP_DEFLATED)
    unpacked = 5000 + len(pickle.dumps({}, protocol=2))
    assert len(data) < unpacked
    monkeypatch.setenv(MAX_ENV, str(unpacked - 1))
    with pytest.raises(CheckpointFileError) as info:
        load_checkpoint_file(data, name='bomb.pth')
    assert str(info.value) == (
        f'Cannot load the checkpoint bomb.pth: it is too large: its '
        f'{len(data)} bytes unpack to {unpacked} bytes (the limit is '
        f'{unpacked - 1}; torch.save never compresses, so the file may be a'
        ' zip bomb). If it really is the checkpoint, raise the limit with '
        'MMACTION_TDX_MAX_CHECKPOINT_BYTES=<bytes>.')
    monkeypatch.setenv(MAX_ENV, str(unpacked))
    # Past the limit check: torch reads it (and fails on the odd layout).
    with pytest.raises(CheckpointFileError) as info:
        load_checkpoint_file(data, name='bomb.pth')
    assert 'too large' not in str(info.value)


def test_zip_without_index_is_truncated():
    data = saved({'a': torch.ones(3)})
    with pytest.raises(CheckpointFileError) as info:
        load_checkpoint_file(data[:len(data) // 2], name='half.pth')
    assert str(info.value) == (
        'Cannot load the checkpoint half.pth: it is truncated: the index of '
        'its zip archive, at the end of the file, is missing (an '
        'interrupted save or download). Save or download it again.')


def test_format_problem_reported_with_the_name(tmp_path):
    path = tmp_path / 'page.pth'
    path.write_bytes(b'<html>login</html>')
    with pytest.raises(CheckpointFileError) as info:
        load_checkpoint_file(path)
    assert str(info.value) == (
        f'Cannot load the checkpoint {path}: it is a web page (HTML/XML), '
        'not a checkpoint: a download returned an error or login page '
        'instead of the file. Check the URL and download it again.')
    with pytest.raises(CheckpointFileError, match='safetensors file'):
        load_checkpoint_file(b'\x10' + bytes(7) + b'{"a": 1}', name='s.pth')


def test_shim_refusal_in_a_file_is_an_unsafe_checkpoint():
    raw = pickle.dumps({'x': np.float32(1)}, protocol=2).replace(
        unicode('f4'), unicode('O8'))
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_file(legacy_checkpoint(raw), name='o.pth')
    assert info.value.details.startswith(
        "Refused by the checkpoint checks: numpy.dtype('O8', False, True)")
    assert str(info.value).startswith(
        'Refused to load the checkpoint o.pth as unsafe:')


def test_malformed_pickle_is_corrupt():
    raw = b'\x80\x02K\x01K\x02\x00.'  # an opcode torch does not know
    with pytest.raises(CheckpointFileError) as info:
        load_checkpoint_file(legacy_checkpoint(raw), name='m.pth')
    assert str(info.value).startswith(
        'Cannot load the checkpoint m.pth: it is corrupt: it is not a '
        'readable PyTorch checkpoint. Save or download it again. '
        '(UnpicklingError: ')
    assert info.value.__cause__ is None


def test_truncated_legacy_pickle():
    data = legacy_checkpoint(pickle.dumps({'a': 1}, protocol=2))
    with pytest.raises(CheckpointFileError) as info:
        load_checkpoint_file(data[:60], name='t.pth')
    assert str(info.value).startswith(
        'Cannot load the checkpoint t.pth: it is truncated: it ends before')


def test_deep_nesting_is_corrupt():
    # Lists 3000 deep around a numpy scalar: torch's unpickler builds
    # them without recursion; rebuilding the scalar walks them.
    scalar = pickle.dumps(np.float32(1), protocol=2)[2:-1]
    raw = b'\x80\x02' + b']' * 3000 + scalar + b'a' * 3000 + b'.'
    with pytest.raises(CheckpointFileError) as info:
        load_checkpoint_file(legacy_checkpoint(raw), name='d.pth')
    assert str(info.value) == (
        'Cannot load the checkpoint d.pth: it is corrupt: its objects are '
        'nested too deeply for a checkpoint.')


def test_other_failures_named(monkeypatch):
    data = saved({'a': 1})

    def fails(*args, **kwargs):
        raise RuntimeError('no such device')

    monkeypatch.setattr(torch, 'load', fails)
    with pytest.raises(CheckpointFileError) as info:
        load_checkpoint_file(data, name='x.pth')
    assert str(info.value) == ('Cannot load the checkpoint x.pth: '
                               'RuntimeError: no such device')
    assert isinstance(info.value.__cause__, RuntimeError)

    def corrupt(*args, **kwargs):
        raise ValueError('bad')

    monkeypatch.setattr(torch, 'load', corrupt)
    with pytest.raises(CheckpointFileError) as info:
        load_checkpoint_file(data, name='x.pth')
    assert str(info.value) == (
        'Cannot load the checkpoint x.pth: it is corrupt: it is not a '
        'readable PyTorch checkpoint. Save or download it again. '
        '(ValueError: bad).')
    assert info.value.__suppress_context__


# --------------------------------------------------------------------------
# Hashes and downloads (urlopen replaced by a fake server)
# --------------------------------------------------------------------------
@pytest.mark.parametrize('name, prefix', [
    ('resnet50-19c8e357.pth', '19c8e357'),
    ('a/b-19c8e357/x.pth', None),
    ('x-0123456789abcdef.tar.gz', '0123456789abcdef'),
    ('model-2024.pth', None), ('m-1234567.pth', None),
    ('m-19C8E357.pth', None), ('m_19c8e357.pth', None),
    ('m-19c8e357', None), ('dir-19c8e357.d/m.pth', None),
])
def test_hash_prefix(name, prefix):
    assert sc.hash_prefix(name) == prefix


def test_sha256_of(tmp_path, monkeypatch):
    data = os.urandom(3000)
    (tmp_path / 'f').write_bytes(data)
    assert sc.sha256_of(str(tmp_path / 'f')) == \
        hashlib.sha256(data).hexdigest()
    # Hashed block by block: an 8 MB file is never in memory at once.
    import tracemalloc
    with open(tmp_path / 'big', 'wb') as file:
        file.truncate(8 << 20)
    tracemalloc.start()
    try:
        digest = sc.sha256_of(str(tmp_path / 'big'))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest == hashlib.sha256(bytes(8 << 20)).hexdigest()
    assert peak < 3 << 20, peak


@pytest.mark.parametrize('value, expected', [
    (None, 60.0), ('', 60.0), ('2.5', 2.5), ('1e-3', 0.001),
    ('0', "MMACTION_TDX_DOWNLOAD_TIMEOUT='0' is not a positive number of "
     'seconds; set it to e.g. 60.'),
    ('-1', "MMACTION_TDX_DOWNLOAD_TIMEOUT='-1' is not a positive number of "
     'seconds; set it to e.g. 60.'),
    ('nan', "MMACTION_TDX_DOWNLOAD_TIMEOUT='nan' is not a positive number "
     'of seconds; set it to e.g. 60.'),
    ('soon', "MMACTION_TDX_DOWNLOAD_TIMEOUT='soon' is not a positive "
     'number of seconds; set it to e.g. 60.'),
])
def test_download_timeout(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    else:
        monkeypatch.setenv(TIMEOUT_ENV, value)
    if isinstance(expected, float):
        assert sc.download_timeout() == expected
    else:
        with pytest.raises(ValueError) as info:
            sc.download_timeout()
        assert str(info.value) == expected


class FakeResponse:
    """What ``urlopen`` returns: headers, then the data in blocks."""

    def __init__(self, data: bytes, length=None, blocks=None):
        self.data = io.BytesIO(data)
        self.headers = {} if length is None else {'Content-Length': length}
        self.reads = []

    def read(self, size):
        self.reads.append(size)
        return self.data.read(size)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def server(monkeypatch):
    """``urlopen`` answering from ``server.files``; ``server.calls`` has
    its arguments."""

    class Server:
        files = {}
        calls = []
        error = None

    def urlopen(request, timeout=None):
        Server.calls.append((request, timeout))
        if Server.error is not None:
            raise Server.error
        data, length = Server.files[request.full_url]
        Server.response = FakeResponse(data, length)
        return Server.response

    class Bar:
        """torch.hub's tqdm, recording its arguments and updates (the
        real one also takes a lock shared between processes, which the
        mutation tests' forked workers must not hold)."""

        def __init__(self, **kwargs):
            Server.bars.append(kwargs)
            kwargs['updates'] = []

        def update(self, n):
            Server.bars[-1]['updates'].append(n)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    Server.bars = []
    monkeypatch.setattr(torch.hub, 'tqdm', Bar)
    monkeypatch.setattr(sc, 'urlopen', urlopen)
    monkeypatch.delenv(MAX_ENV, raising=False)
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    return Server


URL = 'https://example.org/m.pth'


def test_download_writes_the_file(server, tmp_path):
    data = os.urandom(200_000)
    digest = hashlib.sha256(data).hexdigest()
    server.files[URL] = data, str(len(data))
    dst = str(tmp_path / 'm.pth')
    sc.download_url_to_file(URL, dst, digest[:8], progress=False)
    assert open(dst, 'rb').read() == data
    assert os.listdir(tmp_path) == ['m.pth']
    request, timeout = server.calls[0]
    assert request.get_header('User-agent') == 'torch.hub'
    assert timeout == 60.0
    assert set(server.response.reads) == {1 << 16}
    assert server.bars == [
        dict(total=len(data), disable=True, unit='B', unit_scale=True,
             unit_divisor=1024, updates=[1 << 16] * 3 + [200_000 - 3 * (
                 1 << 16)])
    ]
    # The time limit given, or from the environment.
    sc.download_url_to_file(URL, dst, None, False, timeout=3)
    assert server.calls[-1][1] == 3
    # A progress bar by default.
    sc.download_url_to_file(URL, dst)
    assert server.bars[-1]['disable'] is False


@pytest.mark.parametrize('length', [None, 'abc', '-5', ''])
def test_download_without_a_usable_length(server, tmp_path, length):
    server.files[URL] = b'abc', length
    sc.download_url_to_file(URL, str(tmp_path / 'm.pth'), progress=False)
    assert (tmp_path / 'm.pth').read_bytes() == b'abc'
    assert server.bars[0]['total'] is None


def test_download_size_limit_boundary(server, tmp_path, monkeypatch):
    dst = str(tmp_path / 'm.pth')
    monkeypatch.setenv(MAX_ENV, '100')
    server.files[URL] = bytes(100), '100'
    sc.download_url_to_file(URL, dst, progress=False)
    assert os.path.getsize(dst) == 100
    os.remove(dst)
    server.files[URL] = bytes(101), '101'
    with pytest.raises(CheckpointFileError) as info:
        sc.download_url_to_file(URL, dst, progress=False)
    assert str(info.value) == (
        f'Cannot download the checkpoint {URL} to {dst}: the server '
        'announces 101 bytes, more than the limit of 100. If it really is '
        'the checkpoint, raise the limit with '
        'MMACTION_TDX_MAX_CHECKPOINT_BYTES=<bytes>.')
    assert os.listdir(tmp_path) == []
    # A server that announces less than it sends: counted as it arrives.
    server.files[URL] = bytes(1 << 17), '10'
    monkeypatch.setenv(MAX_ENV, str((1 << 17) - 1))
    with pytest.raises(CheckpointFileError) as info:
        sc.download_url_to_file(URL, dst, progress=False)
    assert str(info.value) == (
        f'Cannot download the checkpoint {URL} to {dst}: it is larger than '
        f'the limit of {(1 << 17) - 1} bytes. If it really is the '
        'checkpoint, raise the limit with '
        'MMACTION_TDX_MAX_CHECKPOINT_BYTES=<bytes>.')
    assert os.listdir(tmp_path) == []
    monkeypatch.setenv(MAX_ENV, str(1 << 17))
    sc.download_url_to_file(URL, dst, progress=False)
    assert os.path.getsize(dst) == 1 << 17


def test_download_not_matching_its_hash(server, tmp_path):
    data = b'payload'
    digest = hashlib.sha256(data).hexdigest()
    server.files[URL] = data, None
    dst = str(tmp_path / 'm.pth')
    with pytest.raises(CheckpointFileError) as info:
        sc.download_url_to_file(URL, dst, 'deadbeef', progress=False)
    assert str(info.value) == (
        f'The download of {URL} does not match the SHA-256 prefix deadbeef '
        f'in its name (its SHA-256 is {digest}): it is damaged or not the '
        'published file. It was not saved or loaded. (If deadbeef in the '
        'name is no hash, download the file yourself and give its local '
        'path.)')
    assert os.listdir(tmp_path) == []


def test_download_failures_named(server, tmp_path):
    dst = str(tmp_path / 'm.pth')
    import socket
    import urllib.error
    server.error = urllib.error.URLError(socket.timeout('timed out'))
    with pytest.raises(CheckpointFileError) as info:
        sc.download_url_to_file(URL, dst, progress=False, timeout=0.25)
    assert str(info.value) == (
        f'Cannot download the checkpoint {URL} to {dst}: the server sent '
        'nothing for 0.25 s (after 0 s of download). Check the URL and the '
        'network, wait longer with MMACTION_TDX_DOWNLOAD_TIMEOUT=<seconds>, '
        'or download the file yourself and give its local path.')
    assert info.value.__suppress_context__
    server.error = TimeoutError('read timed out')
    with pytest.raises(CheckpointFileError, match='sent nothing for 60 s'):
        sc.download_url_to_file(URL, dst, progress=False)
    server.error = urllib.error.HTTPError(URL, 404, 'Not Found', {}, None)
    with pytest.raises(CheckpointFileError) as info:
        sc.download_url_to_file(URL, dst, progress=False)
    assert str(info.value) == (
        f'Cannot download the checkpoint {URL} to {dst}: HTTP Error 404: Not'
        ' Found. Check the URL and the network, or download the file '
        'yourself and give its local path.')
    assert info.value.__suppress_context__
    assert os.listdir(tmp_path) == []


def test_download_never_overwrites_a_partial_file(server, tmp_path,
                                                  monkeypatch):
    """The partial file is created exclusively, next to ``dst``."""
    server.files[URL] = b'abc', None
    made = []
    real_open = open

    def spy_open(path, mode='r', *args, **kwargs):
        made.append((str(path), mode))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr('builtins.open', spy_open)
    dst = str(tmp_path / 'm.pth')
    sc.download_url_to_file(URL, dst, progress=False)
    partial, mode = made[0]
    assert mode == 'xb' and partial.startswith(dst + '.')
    assert partial.endswith('.partial') and len(partial) == len(dst) + 41


def test_cached_url_file(server, tmp_path):
    data = b'content'
    digest = hashlib.sha256(data).hexdigest()
    url = f'https://example.org/dir/m-{digest[:8]}.pth?x=1'
    server.files[url] = data, None
    model_dir = str(tmp_path / 'hub' / 'checkpoints')
    path = sc.cached_url_file(url, model_dir, progress=False)
    assert path == osp.join(model_dir, f'm-{digest[:8]}.pth')
    assert open(path, 'rb').read() == data
    assert server.bars[-1]['disable'] is True  # progress=False passed on
    # Found in the cache: checked, not downloaded again.
    assert sc.cached_url_file(url, model_dir) == path
    assert len(server.calls) == 1
    with open(path, 'wb') as file:
        file.write(b'planted')
    with pytest.raises(CheckpointFileError) as info:
        sc.cached_url_file(url, model_dir)
    planted = hashlib.sha256(b'planted').hexdigest()
    assert str(info.value) == (
        f"Cannot load the checkpoint '{url}': its cached copy {path} does "
        f'not match the SHA-256 prefix {digest[:8]} in its name (its SHA-256'
        f' is {planted}), so it is damaged or was replaced. It was not '
        'loaded; delete it to download the file again. (If '
        f'{digest[:8]} in the name is no hash, give the local path of a '
        'copy of the file instead of the URL.)')
    # No hash in the name: the cached file is taken as it is.
    named = sc.cached_url_file(url, model_dir, file_name='plain.pth')
    assert named == osp.join(model_dir, 'plain.pth')
    assert sc.cached_url_file(url, model_dir, file_name='plain.pth') == named
    assert len(server.calls) == 2


def test_cached_url_file_checks_the_download(server, tmp_path):
    """A download that does not match the hash in its name is refused
    while it arrives, and not kept; a progress bar by default."""
    url = 'https://example.org/m-deadbeef.pth'
    server.files[url] = b'other', None
    with pytest.raises(CheckpointFileError, match='does not match the '
                       'SHA-256 prefix deadbeef'):
        sc.cached_url_file(url, str(tmp_path))
    assert os.listdir(tmp_path) == []
    assert server.bars[-1]['disable'] is False


def test_cached_url_file_default_dir(server, tmp_path, monkeypatch,
                                     capsys):
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'th'))
    server.files[URL] = b'abc', None
    path = sc.cached_url_file(URL, progress=False)
    expected = str(tmp_path / 'th' / 'checkpoints' / 'm.pth')
    assert path == expected
    assert capsys.readouterr().err == f'Downloading: {URL} to {expected}\n'


def test_load_url_and_legacy_zip(server, tmp_path, monkeypatch):
    data = saved({'a': torch.ones(2)}, zip_format=False)
    server.files[URL] = data, None
    model_dir = str(tmp_path)
    out = sc.load_url(URL, model_dir, progress=False)
    assert torch.equal(out['a'], torch.ones(2))
    # torch.hub's zipped legacy checkpoint: one member, read from there.
    zipped = zip_bytes({'inner.pth': data}, zipfile.ZIP_DEFLATED)
    url = 'https://example.org/z.pth'
    server.files[url] = zipped, None
    out = sc.load_url(url, model_dir, 'cpu', False, False)
    assert torch.equal(out['a'], torch.ones(2))
    assert sorted(os.listdir(tmp_path)) == ['m.pth', 'z.pth']
    path = str(tmp_path / 'z.pth')
    monkeypatch.setenv(MAX_ENV, str(len(data) - 1))
    with pytest.raises(CheckpointFileError) as info:
        sc.load_url(url, model_dir, progress=False)
    assert str(info.value) == (
        f"Cannot load the checkpoint '{path} (member inner.pth)': it "
        f'unpacks to {len(data)} bytes (the limit is {len(data) - 1}). If it'
        ' really is the checkpoint, raise the limit with '
        'MMACTION_TDX_MAX_CHECKPOINT_BYTES=<bytes>.')
    monkeypatch.setenv(MAX_ENV, str(len(data)))
    assert sc.load_url(url, model_dir, progress=False)['a'].sum() == 2
    # The member's own format is checked, with the member's name.
    html = zip_bytes({'page.pth': b'<html>'})
    server.files['https://example.org/h.pth'] = html, None
    with pytest.raises(CheckpointFileError) as info:
        sc.load_url('https://example.org/h.pth', model_dir, progress=False)
    assert str(info.value).startswith(
        f"Cannot load the checkpoint '{tmp_path}/h.pth (member page.pth)': "
        'it is a web page')


@pytest.mark.parametrize('zipped', [False, True])
def test_load_url_arguments_reach_the_loader(server, tmp_path, monkeypatch,
                                             zipped):
    data = saved({'a': torch.ones(2)}, zip_format=False)
    if zipped:
        data = zip_bytes({'inner.pth': data}, zipfile.ZIP_DEFLATED)
    server.files[URL] = data, None
    out = sc.load_url(URL, str(tmp_path), 'meta', file_name='mine.pth')
    assert out['a'].device.type == 'meta'
    assert os.listdir(tmp_path) == ['mine.pth']
    assert server.bars[-1]['disable'] is False
    # A cached copy is read again with the map_location of this call.
    out = sc.load_url(URL, str(tmp_path), file_name='mine.pth')
    assert out['a'].device.type == 'cpu'


def test_zipped_member_checked_before_it_is_extracted(server, tmp_path,
                                                      monkeypatch):
    """The member's size and first bytes are checked from the zip;
    only then is it inflated, block by block, to a temporary folder next
    to the cache (never the current directory), and loaded under the
    member's name."""
    import tempfile
    reads = []
    real_read = zipfile.ZipExtFile.read

    def spy_read(self, n=-1):
        reads.append(n)
        return real_read(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, 'read', spy_read)
    folders = []
    real_tmp = tempfile.TemporaryDirectory

    def spy_tmp(*args, **kwargs):
        folders.append(kwargs)
        return real_tmp(*args, **kwargs)

    monkeypatch.setattr(sc.tempfile, 'TemporaryDirectory', spy_tmp)
    work = tmp_path / 'cwd'
    work.mkdir()
    monkeypatch.chdir(work)
    cache = tmp_path / 'cache'
    # A web page in the zip: refused from its first bytes.
    server.files[URL] = zip_bytes({'page.pth': b'<html>' + bytes(1 << 17)},
                                  zipfile.ZIP_DEFLATED), None
    with pytest.raises(CheckpointFileError) as info:
        sc.load_url(URL, str(cache), progress=False)
    assert str(info.value) == (
        f"Cannot load the checkpoint '{cache}/m.pth (member page.pth)': it "
        'is a web page (HTML/XML), not a checkpoint: a download returned an'
        ' error or login page instead of the file. Check the URL and '
        'download it again.')
    assert reads == [512] and folders == []
    # A checkpoint: extracted in blocks next to the cache.
    data = saved({'a': torch.zeros(1 << 16)}, zip_format=False)
    url = 'https://example.org/ok.pth'
    server.files[url] = zip_bytes({'ok.pth': data},
                                  zipfile.ZIP_DEFLATED), None
    reads.clear()
    assert sc.load_url(url, str(cache), progress=False)['a'].sum() == 0
    blocks = -(-len(data) // (1 << 16))  # and one more that finds the end
    assert reads == [512] + [1 << 16] * (blocks + 1)
    assert folders == [dict(dir=str(cache))]
    assert os.listdir(work) == [] and sorted(os.listdir(cache)) == [
        'm.pth', 'ok.pth'
    ]
    # A damaged member is named as the member of the cached zip.
    url = 'https://example.org/bad.pth'
    server.files[url] = zip_bytes({'bad.pth': data[:100]}), None
    with pytest.raises(CheckpointFileError) as info:
        sc.load_url(url, str(cache), progress=False)
    assert str(info.value).startswith(
        f"Cannot load the checkpoint '{cache}/bad.pth (member bad.pth)': it"
        ' is truncated')


def test_legacy_zip_member(tmp_path):
    one = tmp_path / 'one.zip'
    one.write_bytes(zip_bytes({'a.pth': b'x'}))
    assert sc._legacy_zip_member(str(one)).filename == 'a.pth'
    two = tmp_path / 'two.zip'
    two.write_bytes(zip_bytes({'a.pth': b'x', 'b.pth': b'y'}))
    assert sc._legacy_zip_member(str(two)) is None
    folder = tmp_path / 'dir.zip'
    folder.write_bytes(zip_bytes({'d/': b''}))
    assert sc._legacy_zip_member(str(folder)) is None
    plain = tmp_path / 'plain.pth'
    plain.write_bytes(b'\x80\x02.')
    assert sc._legacy_zip_member(str(plain)) is None
    empty = tmp_path / 'empty.zip'
    empty.write_bytes(zip_bytes({}))
    assert sc._legacy_zip_member(str(empty)) is None
