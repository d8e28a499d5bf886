# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Hostile checkpoint contents for the checkpoint-safety tests: each
pickles as what an attacker would write (the classes' own names are never
pickled, only what their ``__reduce__`` returns)."""
import os
import shlex
import uuid

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from reliability_helpers import data_options, quickstart_config

SCALAR = getattr(np, '_core', getattr(np, 'core', None)).multiarray.scalar


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


class ObjectDtype:
    """Unpickles as numpy's object dtype, whose flags the BUILD clears (so
    that numpy no longer treats its scalars as pickled objects)."""

    def __reduce__(self):
        return np.dtype, ('O8', False, True), (3, '|', None, None, None, -1,
                                               -1, 0)


class ObjectScalar:
    """Unpickles as ``scalar(object dtype, 8 raw bytes)``: numpy takes the
    bytes for a ``PyObject*`` (here 0x8), which crashes the interpreter."""

    def __reduce__(self):
        return SCALAR, (ObjectDtype(), (8).to_bytes(8, 'little'))


def crafted_history_buffer(state: dict) -> HistoryBuffer:
    """A ``HistoryBuffer`` that pickles with the given state (a NEWOBJ and
    a BUILD, as MMEngine's own)."""
    buffer = HistoryBuffer()
    buffer.__getstate__ = lambda: state  # pickle looks it up on the object
    return buffer


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
    return str(path)


def assert_clear_refusal(message: str, path: str) -> None:
    assert f'Refused to load the checkpoint {shlex.quote(path)} as unsafe' \
        in message
    assert 'may be malicious' in message
    assert 'If you trust the file' in message
    assert 'weights_only=False' in message  # how to re-save a trusted file


def tiny_runner(synthetic_data, work_dir, **cfg_options) -> Runner:
    """The TDRL quick-start runner on ``synthetic_data``, no validation."""
    cfg = Config.fromfile(quickstart_config('tdrl'))
    cfg.merge_from_dict(data_options(synthetic_data, num_train=2))
    cfg.merge_from_dict(cfg_options)
    cfg.work_dir = work_dir
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    # one run name per runner (MMEngine's default is the current second)
    cfg.experiment_name = f'safety_{uuid.uuid4().hex}'
    init_default_scope('mmaction')
    return Runner.from_cfg(cfg)
