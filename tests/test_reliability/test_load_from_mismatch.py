# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""A checkpoint of another architecture is refused, naming the keys and
shapes; fine-tuning leaves parts as initialised only when the config says
so (issue 7, "checkpoints")."""
import glob
import os.path as osp
import types
import uuid

import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import BaseLoop, Runner
from reliability_helpers import (
    data_options,
    make_synthetic_data,
    quickstart_config,
    shipped_configs,
    single_thread,  # noqa: F401 (autouse)
)

from mmaction_tdx.engine import CheckpointMismatchError, StrictLoadHook


def model_cfg(kind: str, depth: int, num_classes: int, **backbone) -> dict:
    """The recognizer of a quick-start config at another depth / number
    of classes / backbone option."""
    cfg = Config.fromfile(quickstart_config(kind)).model
    cfg.backbone.update(depth=depth, **backbone)
    cfg.cls_head.num_classes = num_classes
    cfg.cls_head.in_channels = 512 if depth < 50 else 2048
    return cfg


def build_model(kind: str, depth: int = 18, num_classes: int = 10,
                **backbone):
    init_default_scope('mmaction')
    return MODELS.build(model_cfg(kind, depth, num_classes, **backbone))


class _BuiltLoop(BaseLoop):
    """Stands for the train loop ``Runner.train`` builds before loading."""

    def run(self):
        pass


def check(model, checkpoint_model, cfg=None, training=True, logger=None):
    """Run StrictLoadHook on ``model`` as the runner does when it loads
    ``checkpoint_model``'s weights (saved under DDP: ``module.`` keys)."""
    runner = types.SimpleNamespace(
        model=model,
        cfg=Config(dict(load_from='ckpt.pth', **(cfg or {}))),
        logger=logger or MMLogger.get_current_instance(),
        work_dir='work_dir')
    if training:
        runner._train_loop = _BuiltLoop.__new__(_BuiltLoop)
    state = {
        f'module.{k}': v
        for k, v in checkpoint_model.state_dict().items()
    }
    StrictLoadHook().after_load_checkpoint(runner, dict(state_dict=state))


class RecordingLogger:

    def __init__(self):
        self.warnings = []

    def warning(self, message):
        self.warnings.append(message)


def test_every_config_of_ours_has_the_check():
    assert shipped_configs()
    for path, cfg in shipped_configs():
        if 'default_hooks' in cfg:  # full configs, not model/data bases
            assert cfg.default_hooks.strict_load.type == 'StrictLoadHook', \
                path


def test_same_architecture_passes():
    check(build_model('tdrl'), build_model('tdrl'))


def test_deeper_checkpoint_is_refused():
    """R101 into R50 (TDRL): layer3 has 23 blocks in R101, 6 in R50."""
    r50, r101 = build_model('tdrl', depth=50), build_model('tdrl', depth=101)
    extra = set(r101.state_dict()) - set(r50.state_dict())
    with pytest.raises(CheckpointMismatchError) as info:
        check(r50, r101)
    message = str(info.value)
    assert 'The checkpoint ckpt.pth does not fit the model' in message
    assert f'unexpected (not in the model): {len(extra)} keys' in message
    # Whole blocks are named as modules, in network order.
    per_block = len(extra) // 17
    assert f'backbone.layer3.6.* ({per_block} keys)' in message
    assert 'backbone.layer3.17.*' in message and '... and 5 more' in message
    assert 'missing' not in message and 'shape mismatch' not in message
    assert "load_from_allow_mismatch = ['cls_head']" in message


def test_tdn_checkpoint_into_tdrl_is_refused():
    with pytest.raises(CheckpointMismatchError) as info:
        check(build_model('tdrl'), build_model('tdn'))
    message = str(info.value)
    assert 'unexpected (not in the model): ' in message
    assert 'backbone.stdm.* (' in message  # TDN's S-TDM
    assert 'backbone.layer2.0.ltdm.* (' in message  # TDN's L-TDM
    assert 'missing in the checkpoint: ' in message
    assert 'backbone.layer1.0.enhancement.* (' in message  # TDRL's PEM
    # TDN's temporal conv sits after conv1 (fewer channels) in its blocks.
    assert 'backbone.layer2.0.temporal.conv.weight: (128, 1, 3) vs ' \
        '(64, 1, 3)' in message


def test_other_number_of_classes_is_refused_with_shapes():
    """174 (Something-Something) into 400 (Kinetics) classes."""
    with pytest.raises(CheckpointMismatchError) as info:
        check(build_model('tdrl', num_classes=400),
              build_model('tdrl', num_classes=174))
    message = str(info.value)
    assert 'shape mismatch (checkpoint vs model): 2 keys' in message
    assert 'cls_head.fc_cls.weight: (174, 512) vs (400, 512)' in message
    assert 'cls_head.fc_cls.bias: (174,) vs (400,)' in message


def test_allowed_parts_are_logged_and_only_those():
    model = build_model('tdrl', num_classes=400)
    source = build_model('tdrl', num_classes=174)
    logger = RecordingLogger()
    check(model, source, cfg=dict(load_from_allow_mismatch=['cls_head']),
          logger=logger)
    assert len(logger.warnings) == 1
    assert 'keep their initial weights' in logger.warnings[0]
    assert 'cls_head.fc_cls.weight: (174, 512) vs (400, 512)' \
        in logger.warnings[0]
    # The allowance covers the head only, not a backbone of another depth.
    with pytest.raises(CheckpointMismatchError, match='layer3'):
        check(build_model('tdrl', depth=34, num_classes=400), source,
              cfg=dict(load_from_allow_mismatch=['cls_head']))


def test_fnmatch_allowance_for_added_modules():
    """Starting TDRL from a model without PEM (e.g. TSM-like weights): the
    PEMs, and nothing else, stay as initialised."""
    without_pem = build_model('tdrl', enhancement_module=None)
    with pytest.raises(CheckpointMismatchError, match='.enhancement.'):
        check(build_model('tdrl'), without_pem)
    check(build_model('tdrl'), without_pem,
          cfg=dict(load_from_allow_mismatch=['*.enhancement']))


def test_allowance_does_not_apply_when_testing():
    """A config that fine-tunes with a new head still tests strictly."""
    with pytest.raises(CheckpointMismatchError, match='Testing needs'):
        check(build_model('tdrl', num_classes=400),
              build_model('tdrl', num_classes=174),
              cfg=dict(load_from_allow_mismatch=['cls_head']),
              training=False)


def test_bad_allowance_is_explained():
    with pytest.raises(TypeError, match='load_from_allow_mismatch'):
        check(build_model('tdrl'), build_model('tdrl'),
              cfg=dict(load_from_allow_mismatch=[1]))


# --- through MMEngine's Runner, as tools/train.py and mim train run it ------


@pytest.fixture(scope='module')
def synthetic_data(tmp_path_factory):
    return make_synthetic_data(str(tmp_path_factory.mktemp('synthetic')))


@pytest.fixture(scope='module')
def kinetics_like_checkpoint(tmp_path_factory):
    """A 174-class TDRL-R18 checkpoint (an MMEngine-style dict)."""
    torch.manual_seed(1)
    model = build_model('tdrl', num_classes=174)
    path = str(tmp_path_factory.mktemp('ckpt') / 'tdrl_174.pth')
    torch.save(dict(meta=dict(epoch=3), state_dict=model.state_dict()), path)
    return path


def runner_for(synthetic_data, work_dir, **cfg_options) -> Runner:
    cfg = Config.fromfile(quickstart_config('tdrl'))
    cfg.merge_from_dict(data_options(synthetic_data, num_train=2))
    cfg.merge_from_dict(
        {'train_cfg.max_epochs': 1, 'default_hooks.logger.interval': 1})
    cfg.merge_from_dict(cfg_options)
    cfg.work_dir = work_dir
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    # MMEngine names a run (and its logger instance) by the second it
    # starts: two runners built within one second in this process would
    # share a logger, and the second run's log would land in the first's
    # work dir. A unique name per runner keeps the logs apart.
    cfg.experiment_name = f'load_from_{uuid.uuid4().hex}'
    init_default_scope('mmaction')
    return Runner.from_cfg(cfg)


def test_runner_does_not_train_half_loaded(synthetic_data,
                                           kinetics_like_checkpoint,
                                           tmp_path):
    runner = runner_for(synthetic_data, str(tmp_path),
                        load_from=kinetics_like_checkpoint)
    with pytest.raises(CheckpointMismatchError) as info:
        runner.train()
    assert 'cls_head.fc_cls.weight: (174, 512) vs (10, 512)' in str(
        info.value)
    assert not osp.exists(osp.join(str(tmp_path), 'epoch_1.pth'))


def test_runner_fine_tunes_with_explicit_new_head(synthetic_data,
                                                  kinetics_like_checkpoint,
                                                  tmp_path):
    """With ``load_from_allow_mismatch=['cls_head']`` the run trains, the
    backbone comes from the checkpoint (lr 0 keeps it) and the log says
    which parts were left as initialised."""
    runner = runner_for(
        synthetic_data,
        str(tmp_path),
        load_from=kinetics_like_checkpoint,
        load_from_allow_mismatch=['cls_head'],
        **{'optim_wrapper.optimizer.lr': 0.0})
    runner.train()
    source = torch.load(kinetics_like_checkpoint)['state_dict']
    model = runner.model
    for name, param in model.backbone.named_parameters():
        torch.testing.assert_close(param, source[f'backbone.{name}'])
    assert model.cls_head.fc_cls.weight.shape == (10, 512)
    log = open(glob.glob(osp.join(str(tmp_path), '*', '*.log'))[0]).read()
    assert "`load_from_allow_mismatch=['cls_head']` allows it" in log
    assert 'cls_head.fc_cls.weight: (174, 512) vs (10, 512)' in log


def test_resume_into_other_architecture_is_refused(synthetic_data,
                                                   kinetics_like_checkpoint,
                                                   tmp_path):
    runner = runner_for(
        synthetic_data,
        str(tmp_path),
        load_from=kinetics_like_checkpoint,
        resume=True,
        load_from_allow_mismatch=['cls_head'])
    with pytest.raises(CheckpointMismatchError, match='Resuming needs'):
        runner.train()
