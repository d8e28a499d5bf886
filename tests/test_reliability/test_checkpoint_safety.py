# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Local checkpoint files: pickled code is refused on every load path we
own or patch, with a clear message, and never runs; what MMEngine's
checkpoints need is checked before it is made; a broken file gives one
error naming it (issues 7 and 16). URLs and the download cache:
``test_checkpoint_urls.py``; torch's own loads after our import:
``test_checkpoint_isolation.py``."""
import collections
import os.path as osp
import re
import shlex
import subprocess
import zipfile

import numpy as np
import pytest
import torch
from checkpoint_payloads import (
    GetattrPayload,
    ObjectScalar,
    ShellPayload,
    assert_clear_refusal,
    crafted_history_buffer,
    hostile_checkpoint,
    tiny_runner,
)
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader
from reliability_helpers import (
    PYTHON,
    cli_options,
    data_options,
    make_synthetic_data,
    quickstart_config,
    run_tool,
    single_thread,  # noqa: F401 (autouse)
)

from mmaction_tdx.compat import torch_load
from mmaction_tdx.compat.safe_checkpoint import (
    MAX_BYTES_ENV,
    CheckpointFileError,
    UnsafeCheckpointError,
)

MIM = osp.join(osp.dirname(PYTHON), 'mim')


def buffer_state(**overrides) -> dict:
    state = dict(
        max_length=10,
        _log_history=np.array([1.0, 3.0]),
        _count_history=np.array([1, 1]))
    state.update(overrides)
    return state


def refused(path: str) -> str:
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert_clear_refusal(str(info.value), path)
    return str(info.value)


@pytest.fixture
def marker(tmp_path):
    path = str(tmp_path / 'payload_ran')
    yield path
    # The payload must never have run, whatever the test asserted.
    assert not osp.exists(path)


def test_payload_is_real(tmp_path):
    """Control: without weights_only the payload does run, so the tests
    below would notice if a load path let it through."""
    ran = str(tmp_path / 'ran')
    path = hostile_checkpoint(str(tmp_path / 'evil.pth'), ShellPayload(ran))
    torch.load(path, weights_only=False)
    assert osp.exists(ran)


def test_local_checkpoints_load_with_explicit_weights_only():
    loader = CheckpointLoader._get_checkpoint_loader('work_dirs/x/epoch_1.pth')
    assert loader is torch_load.load_from_local


def test_mmengine_checkpoint_with_history_buffer_loads(tmp_path):
    path = hostile_checkpoint(str(tmp_path / 'ok.pth'), payload=3)
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert checkpoint['meta']['extra'] == 3
    buffer = checkpoint['message_hub']['log_scalars']['train/loss']
    assert type(buffer) is HistoryBuffer
    assert buffer.current() == 1.0 and buffer.statistics('mean') == 1.0


def test_numpy_data_rebuilt_exactly(tmp_path):
    """Numeric arrays and scalars of every byte order and layout come back
    equal, of the same type, as writable arrays of their own."""
    data = dict(
        big_endian=np.arange(6, dtype='>i4').reshape(2, 3),
        fortran=np.asfortranarray(np.arange(6.).reshape(2, 3)),
        empty=np.array([], dtype='f8'),
        zero_dim=np.array(5, dtype=np.uint16),
        bools=np.array([True, False]),
        f32=np.float32(2.5),
        c128=np.complex128(1 + 2j),
        flag=np.bool_(True),
        dtype=np.dtype('f4'))
    path = str(tmp_path / 'numpy.pth')
    torch.save(data, path)
    loaded = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    for key, value in data.items():
        assert type(loaded[key]) is type(value), key
        if isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype, key
            np.testing.assert_array_equal(loaded[key], value)
            assert loaded[key].flags.writeable and loaded[key].flags.owndata
        else:
            assert loaded[key] == value, key


def test_os_system_payload_is_refused(tmp_path, marker, monkeypatch):
    path = hostile_checkpoint(
        str(tmp_path / 'evil.pth'), ShellPayload(marker))
    # Even the environment switch that turns weights_only off where a
    # caller does not set it has no effect: our loader sets it.
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    assert 'posix.system' in refused(path)


def test_legacy_format_payload_is_refused(tmp_path, marker):
    path = str(tmp_path / 'evil_legacy.pth')
    torch.save({'x': ShellPayload(marker)}, path,
               _use_new_zipfile_serialization=False)
    assert 'posix.system' in refused(path)


@pytest.mark.parametrize(
    'payload', [
        GetattrPayload(HistoryBuffer, '__init__'),
        GetattrPayload(HistoryBuffer, '__class__'),
        GetattrPayload(GetattrPayload(HistoryBuffer, 'mean'), '__globals__'),
        GetattrPayload(HistoryBuffer, 'update'),
        GetattrPayload(HistoryBuffer, 'register_statistics'),
        GetattrPayload(collections.Counter, 'update'),
        GetattrPayload(np.ndarray, 'mean'),
        GetattrPayload(collections.OrderedDict, 'fromkeys'),
    ],
    ids=[
        'dunder_method', 'dunder_attribute', 'globals_of_allowed_method',
        'public_method_not_a_statistic', 'classmethod', 'counter_update',
        'ndarray_mean', 'ordered_dict_fromkeys'
    ])
def test_getattr_payload_is_refused(tmp_path, payload):
    """``getattr`` is bound to a guard that only returns HistoryBuffer's
    statistics methods (what MMEngine pickles): ordinary names on other
    owners, and other names on HistoryBuffer, are refused."""
    path = hostile_checkpoint(str(tmp_path / 'evil.pth'), payload)
    assert 'getattr(' in refused(path)


def object_scalar_checkpoint(path: str) -> str:
    torch.save({'state_dict': {}, 'x': ObjectScalar()}, path)
    return path


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return run_tool([PYTHON, '-c', code], env=env, timeout=120)


def test_object_dtype_scalar_refused_without_crash(tmp_path):
    path = object_scalar_checkpoint(str(tmp_path / 'crash.pth'))
    # Control: unpickled as numpy would, the file kills the interpreter.
    crash = run_python(
        f'import torch; torch.load({path!r}, weights_only=False)')
    assert crash.returncode == -11, (crash.returncode, crash.stderr[-500:])
    result = run_python(
        'import mmaction_tdx\n'
        'from mmengine.runner.checkpoint import CheckpointLoader\n'
        f'CheckpointLoader.load_checkpoint({path!r})\n')
    assert result.returncode == 1, (result.returncode, result.stderr[-500:])
    assert 'UnsafeCheckpointError' in result.stderr
    assert_clear_refusal(result.stderr, path)
    assert "numpy.dtype('O8', False, True)" in result.stderr


def test_object_dtype_refused_even_if_user_allows_numpy(tmp_path):
    """A user's own process-wide numpy allowlist (what older versions of
    mmaction_tdx registered) does not reach our loads, and is restored."""
    path = object_scalar_checkpoint(str(tmp_path / 'crash.pth'))
    dtypes = [t for t in vars(np.dtypes).values() if isinstance(t, type)]
    code = (
        'import numpy as np, torch\n'
        'user = [np.dtype, np.ndarray, np._core.multiarray.scalar,\n'
        '        np._core.multiarray._reconstruct,\n'
        f'        *[getattr(np.dtypes, n) for n in {[t.__name__ for t in dtypes]!r}]]\n'  # noqa: E501
        'torch.serialization.add_safe_globals(user)\n'
        'before = torch.serialization.get_safe_globals()\n'
        'import mmaction_tdx\n'
        'from mmengine.runner.checkpoint import CheckpointLoader\n'
        'try:\n'
        f'    CheckpointLoader.load_checkpoint({path!r})\n'
        'except Exception as err:\n'
        '    print(type(err).__name__)\n'
        'after = torch.serialization.get_safe_globals()\n'
        'print(all(g in after for g in user))\n')
    result = run_python(code)
    assert result.returncode == 0, (result.returncode, result.stderr[-500:])
    assert result.stdout.split()[-2:] == ['UnsafeCheckpointError', 'True']


@pytest.mark.parametrize(
    'state', [
        buffer_state(statistics_methods={'mean': 1}),
        buffer_state(statistics_methods={
            'mean': GetattrPayload(HistoryBuffer, 'max')}),
        buffer_state(statistics_methods={
            'weighted': GetattrPayload(HistoryBuffer, 'min')}),
        buffer_state(_statistics_methods={'mean': 1}),
        buffer_state(__class__=1),
        buffer_state(max_length='10'),
        buffer_state(_log_history=np.array([1.0, 2.0, 3.0])),
        buffer_state(_log_history=np.ones((2, 2))),
    ],
    ids=[
        'method_replaced_by_int', 'method_replaced_by_other_method',
        'unknown_statistic', 'class_table_as_attribute', 'class_attribute',
        'max_length_not_int', 'lengths_differ', 'not_1d'
    ])
def test_hostile_history_buffer_refused_and_logging_intact(tmp_path, state):
    path = str(tmp_path / 'hub.pth')
    torch.save({'message_hub': {'log_scalars': {
        'train/loss': crafted_history_buffer(state)}}}, path)
    table = dict(HistoryBuffer._statistics_methods)
    assert 'HistoryBuffer' in refused(path)
    assert HistoryBuffer._statistics_methods == table
    assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.mean
    buffer = HistoryBuffer()
    buffer.update(1.0)
    buffer.update(3.0)
    assert buffer.statistics('mean') == 2.0
    assert buffer.statistics('max') == 3.0


def test_hostile_statistics_methods_are_real(tmp_path):
    """Control: loaded by MMEngine's own ``__setstate__``, the state
    replaces the statistics of every buffer (in a child process, not to
    break this one's logging)."""
    path = str(tmp_path / 'hub.pth')
    torch.save({'b': crafted_history_buffer(
        buffer_state(statistics_methods={'mean': 1}))}, path)
    result = run_python(
        'import torch\n'
        'from mmengine.logging.history_buffer import HistoryBuffer\n'
        f'torch.load({path!r}, weights_only=False)\n'
        'print(HistoryBuffer._statistics_methods["mean"])\n')
    assert result.stdout.split() == ['1'], result.stderr[-500:]


def test_crafted_history_buffer_with_valid_state_loads(tmp_path):
    """The checks accept what MMEngine writes, statistics included."""
    path = str(tmp_path / 'hub.pth')
    state = buffer_state(statistics_methods={
        name: GetattrPayload(HistoryBuffer, name)
        for name in ('min', 'max', 'current', 'mean')
    })
    torch.save({'b': crafted_history_buffer(state)}, path)
    buffer = CheckpointLoader.load_checkpoint(path)['b']
    assert type(buffer) is HistoryBuffer and 'statistics_methods' not in \
        vars(buffer)
    assert buffer.max_length == 10 and buffer.statistics('mean') == 2.0


# --------------------------------------------------------------------------
# Files that cannot be read: one error naming the file and the problem
# --------------------------------------------------------------------------
def real_checkpoint(path: str, legacy: bool = False) -> str:
    torch.save(
        {'state_dict': {'w': torch.arange(4096.)}, 'meta': {'epoch': 1}},
        path, _use_new_zipfile_serialization=not legacy)
    return path


def cut(path: str, fraction: float) -> str:
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * fraction)])
    return path


def garbage_pickle_zip(path: str) -> str:
    real_checkpoint(path)
    with zipfile.ZipFile(path) as archive:
        members = {i.filename: archive.read(i) for i in archive.infolist()}
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in members.items():
            archive.writestr(
                name, b'\x80\x02}q\x00\xff\xff' if name.endswith(
                    'data.pkl') else data)
    return path


def torchscript_file(path: str) -> str:
    torch.jit.script(torch.nn.Linear(2, 2)).save(path)
    return path


def write(path: str, data: bytes) -> str:
    with open(path, 'wb') as f:
        f.write(data)
    return path


@pytest.mark.parametrize(
    'make, phrase', [
        (lambda p: write(p, b''), 'it is empty (0 bytes)'),
        (lambda p: cut(real_checkpoint(p), 0.5), 'it is truncated'),
        (lambda p: cut(real_checkpoint(p, legacy=True), 0.5),
         'it is truncated'),
        (garbage_pickle_zip, 'it is corrupt'),
        (lambda p: write(p, b'not a checkpoint'),
         'is not a PyTorch checkpoint'),
        (lambda p: write(p, b'<!DOCTYPE html><html>Access denied</html>'),
         'is a web page'),
        (torchscript_file, 'TorchScript archive'),
    ],
    ids=[
        'empty', 'truncated_zip', 'truncated_legacy', 'corrupt', 'text',
        'html', 'torchscript'
    ])
def test_unreadable_file_gives_one_clear_error(tmp_path, make, phrase):
    path = make(str(tmp_path / 'epoch_3.pth'))
    with pytest.raises(CheckpointFileError) as info:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    message = str(info.value)
    assert message.startswith(f'Cannot load the checkpoint {path}:')
    assert phrase in message
    assert 'as unsafe' not in message
    # One error: not chained to torch's (which names no file).
    assert info.value.__cause__ is None


def test_too_large_file_refused_before_reading(tmp_path, monkeypatch):
    path = real_checkpoint(str(tmp_path / 'big.pth'))
    monkeypatch.setenv(MAX_BYTES_ENV, '1000')
    with pytest.raises(CheckpointFileError) as info:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert 'it is too large' in str(info.value) and MAX_BYTES_ENV in str(
        info.value)
    monkeypatch.setenv(MAX_BYTES_ENV, str(osp.getsize(path)))
    assert CheckpointLoader.load_checkpoint(path)['meta'] == {'epoch': 1}


def test_missing_file_named(tmp_path):
    path = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='can not be found'):
        CheckpointLoader.load_checkpoint(path)


class Harmless:
    """A type torch refuses but whose unpickling does nothing."""

    def __reduce__(self):
        return collections.namedtuple, ('Point', 'x y')


def test_file_name_in_message_cannot_run_code(tmp_path):
    """The suggested re-save command quotes the file names: pasted into a
    shell, a name made to break out of a Python string runs nothing, and
    the command does what it says."""
    name = "x'+str(__import__('os').system('touch pwned'))+'.pth"
    path = str(tmp_path / name)
    torch.save({'state_dict': {'w': torch.ones(2)}, 'x': Harmless()}, path)
    message = refused(path)
    command = re.search(r'^\s+(python -c .*)$', message, re.M).group(1)
    command = shlex.quote(PYTHON) + command[len('python'):]
    result = subprocess.run(
        command, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not osp.exists(tmp_path / 'pwned')
    resaved = CheckpointLoader.load_checkpoint(path + '.weights.pth')
    assert torch.equal(resaved['state_dict']['w'], torch.ones(2))


# --------------------------------------------------------------------------
# The runner, mim test, the converter
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def synthetic_data(tmp_path_factory):
    return make_synthetic_data(str(tmp_path_factory.mktemp('synthetic')))


@pytest.mark.parametrize('resume', [False, True], ids=['load_from', 'resume'])
def test_runner_refuses_payload(synthetic_data, tmp_path, marker, resume):
    """``load_from`` and ``--resume <file>`` (what tools/train.py sets)."""
    path = hostile_checkpoint(
        str(tmp_path / 'evil.pth'), ShellPayload(marker))
    runner = tiny_runner(
        synthetic_data, str(tmp_path / 'work'), load_from=path,
        resume=resume)
    with pytest.raises(UnsafeCheckpointError) as info:
        runner.train()
    assert_clear_refusal(str(info.value), path)
    assert not osp.exists(osp.join(str(tmp_path / 'work'), 'epoch_1.pth'))


def test_mim_test_refuses_payload(synthetic_data, tmp_path, marker):
    """``mim test mmaction_tdx CONFIG --checkpoint FILE`` in a fresh
    process, as a user runs it."""
    path = hostile_checkpoint(
        str(tmp_path / 'evil.pth'), ShellPayload(marker))
    result = run_tool([
        MIM, 'test', 'mmaction_tdx',
        quickstart_config('tdrl'), '--checkpoint', path, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        *cli_options(data_options(synthetic_data, num_train=2))
    ])
    assert result.returncode != 0
    assert 'UnsafeCheckpointError' in result.stderr
    assert_clear_refusal(result.stderr, path)


def test_tdn_converter_refuses_payload(tmp_path, marker):
    from mmaction_tdx.models.utils.tdn_checkpoint import (
        load_release_checkpoint,
    )
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': ShellPayload(marker)}, path)
    with pytest.raises(ValueError) as info:
        load_release_checkpoint(path)
    message = str(info.value)
    assert message.startswith(path)
    assert 'refused as unsafe' in message and 'posix.system' in message


def test_tdn_converter_refuses_numpy(tmp_path):
    """The converter allows only what release checkpoints hold
    (``Counter``): no numpy, whatever our own loads allow."""
    from mmaction_tdx.models.utils.tdn_checkpoint import (
        load_release_checkpoint,
    )
    path = str(tmp_path / 'numpy.pth')
    torch.save({'state_dict': {}, 'x': np.ones(2)}, path)
    with pytest.raises(ValueError, match='refused as unsafe'):
        load_release_checkpoint(path)
