# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Checkpoints with pickled code are refused on every load path we own or
patch, with a clear message, and the code never runs (issue 7,
"checkpoints")."""
import os
import os.path as osp
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
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
from mmaction_tdx.compat.torch_load import UnsafeCheckpointError

MIM = osp.join(osp.dirname(PYTHON), 'mim')


class ShellPayload:
    """Unpickles as ``os.system('touch <marker>')``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class GetattrPayload:
    """Unpickles as ``getattr(owner, name)``."""

    def __init__(self, owner, name: str) -> None:
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


def hostile_checkpoint(path: str, payload) -> str:
    """An MMEngine-like checkpoint (real weights, message hub with a
    HistoryBuffer) that also carries ``payload``."""
    buffer = HistoryBuffer()
    buffer.update(1.0)
    torch.save(
        dict(
            meta=dict(epoch=1, iter=1, extra=payload),
            state_dict={'backbone.conv1.conv.weight': torch.zeros(1)},
            message_hub=dict(log_scalars={'train/loss': buffer})), path)
    return path


def assert_clear_refusal(message: str, path: str) -> None:
    assert f'Refused to load the checkpoint {path} as unsafe' in message
    assert 'may be malicious' in message
    assert 'If you trust the file' in message
    assert 'weights_only=False' in message  # how to re-save a trusted file


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
    assert checkpoint['message_hub']['log_scalars']['train/loss'].current(
    ) == 1.0


def test_os_system_payload_is_refused(tmp_path, marker, monkeypatch):
    path = hostile_checkpoint(
        str(tmp_path / 'evil.pth'), ShellPayload(marker))
    # Even the environment switch that turns weights_only off where a
    # caller does not set it has no effect: our loader sets it.
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert_clear_refusal(str(info.value), path)
    assert 'posix.system' in str(info.value)


@pytest.mark.parametrize(
    'payload', [
        GetattrPayload(HistoryBuffer, '__init__'),
        GetattrPayload(HistoryBuffer, '__class__'),
        GetattrPayload(GetattrPayload(HistoryBuffer, 'mean'), '__globals__'),
    ],
    ids=['dunder_method', 'dunder_attribute', 'globals_of_allowed_method'])
def test_getattr_payload_is_refused(tmp_path, payload):
    """``getattr`` is bound to a guard that only returns public methods of
    HistoryBuffer (what MMEngine pickles), nothing else."""
    path = hostile_checkpoint(str(tmp_path / 'evil.pth'), payload)
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert_clear_refusal(str(info.value), path)
    assert 'Refused getattr(' in str(info.value)


@pytest.fixture(scope='module')
def synthetic_data(tmp_path_factory):
    return make_synthetic_data(str(tmp_path_factory.mktemp('synthetic')))


def tiny_runner(synthetic_data, work_dir, **cfg_options) -> Runner:
    cfg = Config.fromfile(quickstart_config('tdrl'))
    cfg.merge_from_dict(data_options(synthetic_data, num_train=2))
    cfg.merge_from_dict(cfg_options)
    cfg.work_dir = work_dir
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    # one run name per runner (MMEngine's default is the current second)
    cfg.experiment_name = f'safety_{uuid.uuid4().hex}'
    init_default_scope('mmaction')
    return Runner.from_cfg(cfg)


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


def test_malformed_file_is_not_called_unsafe(tmp_path):
    """Only refusals of objects are reported as unsafe; a file that is no
    checkpoint at all keeps torch's own error."""
    path = tmp_path / 'notes.pth'
    path.write_text('not a checkpoint')
    with pytest.raises(Exception) as info:
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert 'as unsafe' not in str(info.value)
