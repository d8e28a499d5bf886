# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""``compile=True`` in a config, through MMEngine's Runner (what
``mim train`` / ``tools/train.py`` do with it): the Runner compiles
``model.train_step``. An epoch whose last batch is smaller makes dynamo
re-trace with a symbolic batch size; the weights after the epoch must be
those of the eager run.

The ``aot_eager`` backend traces forward and backward exactly as inductor
receives them (dynamo, AOTAutograd), without inductor's code generation,
which takes minutes per model on a CPU and is exercised by
``tools/analysis/benchmark.py --compile``."""
import os
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from reliability_helpers import (  # noqa: F401
    data_options,
    make_synthetic_data,
    quickstart_config,
    single_thread,
)


@pytest.fixture(scope='module')
def synthetic_data(tmp_path_factory):
    return make_synthetic_data(str(tmp_path_factory.mktemp('synthetic')))


def _train(kind, data_root, work_dir, compile_cfg):
    cfg = Config.fromfile(quickstart_config(kind))
    # 5 videos in batches of 3: the last batch has 2.
    cfg.merge_from_dict(data_options(data_root, num_train=5, batch_size=3))
    cfg.merge_from_dict({
        'train_cfg.max_epochs': 1,
        'model.cls_head.dropout_ratio': 0.0,
        'randomness': dict(seed=0, deterministic=False),
    })
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.work_dir = work_dir
    cfg.experiment_name = f'compile_{uuid.uuid4().hex}'
    if compile_cfg is not None:
        cfg.compile = compile_cfg
    init_default_scope('mmaction')
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    return losses, {k: v.detach().clone() for k, v in
                    runner.model.state_dict().items()}


# TDN: the model whose (N*T) -> (N, T) views meet a symbolic batch in
# most modules. TDRL passes too (about 2 minutes; run with
# MMACTION_TDX_COMPILE_ALL=1), left out of the suite for its time budget.
KINDS = ['tdn', 'tdrl'] if os.environ.get('MMACTION_TDX_COMPILE_ALL') \
    else ['tdn']


@pytest.mark.parametrize('kind', KINDS)
def test_runner_trains_compiled_like_eager(kind, synthetic_data, tmp_path,
                                           recording_compile_backend):
    backend, graphs = recording_compile_backend
    compiled_losses, compiled = _train(kind, synthetic_data,
                                       str(tmp_path / 'compiled'),
                                       dict(backend=backend))
    eager_losses, eager = _train(kind, synthetic_data,
                                 str(tmp_path / 'eager'), None)
    # Compiled at all, and re-traced with a symbolic batch for the last one.
    assert graphs and not graphs[0] and any(graphs)
    # The same loss at both iterations (the second after one update).
    assert len(eager_losses) == 2
    torch.testing.assert_close(
        torch.tensor(compiled_losses), torch.tensor(eager_losses),
        rtol=1e-4, atol=1e-6)
    assert compiled.keys() == eager.keys()
    for name, value in eager.items():
        # Float reassociation in the traced graphs: ~1e-5 (TDRL: one
        # weight of 147456 by 1.4e-4) after two SGD steps on weights of
        # scale 0.1; the losses above are the sharp check.
        torch.testing.assert_close(compiled[name], value, rtol=1e-3,
                                   atol=5e-4,
                                   msg=lambda m, name=name: f'{name}: {m}')
