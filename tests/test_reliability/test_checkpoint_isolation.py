# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""``import mmaction_tdx`` weakens no other ``torch.load``: torch's
process-wide list of safe globals is not widened, and a user's own
``torch.load(weights_only=True)`` refuses what plain torch refuses, also
after our loads (issue 16)."""
import json
import os.path as osp
import pickle
import threading

import numpy as np
import pytest
import torch
from checkpoint_payloads import (
    GetattrPayload,
    ObjectScalar,
    hostile_checkpoint,
)
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader
from reliability_helpers import PYTHON, run_tool

from mmaction_tdx.compat.safe_checkpoint import UnsafeCheckpointError

# Names a user's torch.load must not gain from our import.
OURS = ('numpy', 'mmengine', 'builtins', 'collections', '_codecs')


def safe_global_names():
    return sorted(
        entry[1] if isinstance(entry, tuple) else
        f'{entry.__module__}.{entry.__qualname__}'
        for entry in torch.serialization.get_safe_globals())


def test_import_adds_no_safe_globals():
    """Torch registers globals of its own as its submodules are imported
    (DTensor, NJT); the import of mmaction_tdx adds none."""
    code = (
        'import json, torch\n'
        'from test_checkpoint_isolation import safe_global_names\n'
        'before = safe_global_names()\n'
        'import mmaction_tdx, mmaction.models, mmengine.runner\n'
        'print(json.dumps([before, safe_global_names()]))\n')
    result = run_tool([PYTHON, '-c', code],
                      env=dict(PYTHONPATH=osp.dirname(__file__)))
    assert result.returncode == 0, result.stderr[-2000:]
    before, after = json.loads(result.stdout.splitlines()[-1])
    added = sorted(set(after) - set(before))
    assert all(name.startswith('torch.') for name in added), added
    assert not [n for n in after if n.startswith(OURS)], after


@pytest.fixture(scope='module')
def payload_files(tmp_path_factory):
    """Files plain torch refuses under ``weights_only=True``."""
    root = tmp_path_factory.mktemp('payloads')
    files = {}

    def save(name, obj):
        files[name] = str(root / f'{name}.pth')
        torch.save(obj, files[name])

    hostile_checkpoint(str(root / 'mmengine.pth'), payload=1)
    files['mmengine'] = str(root / 'mmengine.pth')
    save('ndarray', {'x': np.ones(3)})
    save('numpy_scalar', {'x': np.float64(1.5)})
    save('object_scalar', {'x': ObjectScalar()})
    save('getattr_counter', {'x': GetattrPayload(collections_counter(),
                                                 'update')})
    save('getattr_buffer', {'x': GetattrPayload(HistoryBuffer, 'mean')})
    return files


def collections_counter():
    import collections
    return collections.Counter


USER_LOADS = '''
import json, pickle, sys, torch
files = json.loads(sys.argv[1])
if sys.argv[2] == 'import':
    import mmaction_tdx
    from mmengine.runner.checkpoint import CheckpointLoader
    # one of our loads first: what it allows must not outlive it
    CheckpointLoader.load_checkpoint(files['mmengine'])
outcome = {}
for name, path in sorted(files.items()):
    try:
        torch.load(path, weights_only=True)
        outcome[name] = 'loaded'
    except pickle.UnpicklingError as err:
        detail = str(err).split('WeightsUnpickler')[-1]
        outcome[name] = 'refused: ' + detail[:200]
print(json.dumps(outcome))
'''


def user_loads(files, mode):
    result = run_tool(
        [PYTHON, '-c', USER_LOADS, json.dumps(files), mode], timeout=120)
    # A crash (the object-dtype scalar) would give no outcome at all.
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    return json.loads(result.stdout.splitlines()[-1])


def test_user_torch_load_behaves_as_plain_torch(payload_files):
    plain = user_loads(payload_files, 'plain')
    assert all(v.startswith('refused') for v in plain.values()), plain
    assert user_loads(payload_files, 'import') == plain


def test_our_loads_leave_torch_list_as_it_was(payload_files):
    before = set(torch.serialization.get_safe_globals())
    CheckpointLoader.load_checkpoint(payload_files['mmengine'])
    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(payload_files['getattr_counter'])
    assert set(torch.serialization.get_safe_globals()) == before
    with pytest.raises(Exception, match='Unsupported global'):
        torch.load(payload_files['mmengine'], weights_only=True)


class UserType:
    """A type a user allowed for their own loads."""


def test_concurrent_loads_leave_torch_list_alone(payload_files, tmp_path,
                                                 monkeypatch):
    """Two of our loads and a plain ``torch.load`` at the same moment
    (issue 23, finding 1): while ours are paused in the middle of
    unpickling, torch's list is the user's, a plain load refuses what plain
    torch refuses and still gets the user's own entries; afterwards both of
    ours have loaded and the list is unchanged."""
    from mmaction_tdx.compat import safe_checkpoint
    user_file = str(tmp_path / 'user.pth')
    torch.save({'x': UserType()}, user_file)
    saved = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([UserType])
    before = set(torch.serialization.get_safe_globals())
    inside = threading.Barrier(3, timeout=30)
    go_on = threading.Event()
    paused = threading.local()
    original = safe_checkpoint.checked_dtype

    def pausing_dtype(*args):
        if not getattr(paused, 'done', False):
            paused.done = True
            inside.wait()  # both of ours are mid-load
            go_on.wait(timeout=30)
        return original(*args)

    monkeypatch.setattr(safe_checkpoint, 'checked_dtype', pausing_dtype)
    results, errors = [], []

    def ours():
        try:
            results.append(
                CheckpointLoader.load_checkpoint(payload_files['mmengine']))
        except BaseException as err:  # reported below
            errors.append(err)
            inside.abort()

    threads = [threading.Thread(target=ours) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        inside.wait()
        assert set(torch.serialization.get_safe_globals()) == before
        with pytest.raises(pickle.UnpicklingError,
                           match='Unsupported global'):
            torch.load(payload_files['mmengine'], weights_only=True)
        assert isinstance(
            torch.load(user_file, weights_only=True)['x'], UserType)
        go_on.set()
        for thread in threads:
            thread.join(timeout=60)
        after = set(torch.serialization.get_safe_globals())
    finally:
        go_on.set()
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)
    assert after == before  # nothing left behind, nothing dropped
    assert not errors, errors
    assert len(results) == 2
    for checkpoint in results:
        buffer = checkpoint['message_hub']['log_scalars']['train/loss']
        assert isinstance(buffer, HistoryBuffer) and buffer.current() == 1.0
