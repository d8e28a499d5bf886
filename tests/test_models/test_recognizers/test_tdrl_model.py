# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The TDRL model configs end to end: loss wiring, backward, inference."""
import copy
import glob
import os.path as osp
import uuid

# mmaction_tdx first: its compat fixes make `mmaction.models` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import pytest
import torch
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from torch.utils.data import Dataset

CONFIG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(__file__)))), 'configs',
    '_base_', 'models')


@pytest.fixture(autouse=True)
def _mmaction_scope():
    init_default_scope('mmaction')


def _model_cfg(name='tdrl_r50.py', **backbone):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    # custom_imports comes with _base_/default_runtime.py, not model bases
    # (MMEngine refuses a key defined in two bases of one config).
    assert 'custom_imports' not in cfg
    model = copy.deepcopy(cfg.model)
    model.backbone.pretrained = None  # no download in tests
    model.backbone.update(backbone)
    return model


def _r18_cfg(**backbone):
    cfg = _model_cfg(depth=18, **backbone)
    cfg.cls_head.in_channels = 512
    return cfg


def _batch(videos=2, segments=8, size=32, num_classes=400):
    """Random frames; a brightness per frame makes the segments differ."""
    gen = torch.Generator().manual_seed(0)

    def video():
        brightness = torch.rand(segments, 1, 1, 1, generator=gen)
        noise = torch.randint(0, 256, (segments, 3, size, size), generator=gen)
        return (brightness * noise).to(torch.uint8)

    return dict(
        inputs=[video() for _ in range(videos)],
        data_samples=[
            ActionDataSample().set_gt_label(i % num_classes)
            for i in range(videos)
        ])


def test_r101_config_builds():
    model = _model_cfg('tdrl_r101.py')
    assert model.backbone.depth == 101
    assert model.cls_head.loss_td.type == 'TemporalDiversityLoss'


def test_r50_config_trains_with_td_loss():
    torch.manual_seed(0)
    model = MODELS.build(_model_cfg())
    model.init_weights()
    model.train()
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    assert losses['loss_td'].item() > 0
    loss, log_vars = model.parse_losses(losses)
    assert torch.allclose(loss, losses['loss_cls'] + losses['loss_td'])
    loss.backward()
    checked = 0
    for name, param in model.backbone.named_parameters():
        if '.enhancement.' in name or '.temporal.' in name:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
            checked += 1
    assert checked == 16 * 9  # 16 blocks: 8 PEM tensors + 1 TM weight

    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log_vars = model.train_step(_batch(), optim_wrapper)
    assert {'loss', 'loss_cls', 'loss_td'} <= set(log_vars)


def test_td_loss_reaches_the_head_without_hooks_or_mode_dependent_output():
    """No forward hook anywhere; the backbone returns a tensor in training
    too; ``loss_td`` is the TD loss of exactly the tensors the TDRL-B
    blocks' TMs return (captured here by the test's own hooks)."""
    torch.manual_seed(0)
    model = MODELS.build(_r18_cfg()).train()
    assert not any(module._forward_hooks for module in model.modules())
    data = model.data_preprocessor(_batch(), True)
    assert torch.is_tensor(model.backbone(data['inputs'].flatten(0, 1)))
    captured = []
    handles = [
        getattr(model.backbone, name)[-1].temporal.register_forward_hook(
            lambda module, args, output: captured.append(output))
        for name in ('layer2', 'layer3', 'layer4')
    ]
    losses = model(**data, mode='loss')
    for handle in handles:
        handle.remove()
    assert len(captured) == 3
    want = sum(model.cls_head.loss_td(z, num_segments=8) for z in captured)
    torch.testing.assert_close(losses['loss_td'], want, rtol=0, atol=0)


def test_eval_forward_is_plain_and_computes_no_td_features():
    model = MODELS.build(_r18_cfg())
    model.eval()
    data = model.data_preprocessor(_batch(), False)
    calls = []
    for name in model.backbone.res_layers:
        for block in getattr(model.backbone, name):
            block.register_forward_pre_hook(
                lambda m, args, kwargs: calls.append(kwargs),
                with_kwargs=True)
    with torch.no_grad():
        feats = model(data['inputs'], mode='tensor')
        preds = model(**data, mode='predict')
    assert torch.is_tensor(feats) and feats.shape == (16, 512, 1, 1)
    assert len(preds) == 2 and preds[0].pred_score.shape == (400, )
    assert calls and not any(kwargs.get('return_td') for kwargs in calls)


def test_eval_mode_loss_works_without_td_loss():
    """Issue 13: mode='loss' on an eval-mode TDRL model with loss_td (a
    validation-loss hook) gives the classification loss, no exception."""
    model = MODELS.build(_r18_cfg())
    data = model.data_preprocessor(_batch(), True)
    model.train()
    assert 'loss_td' in model(**data, mode='loss')
    model.eval()
    with torch.no_grad():
        losses = model(**data, mode='loss')
    assert 'loss_td' not in losses and torch.isfinite(losses['loss_cls'])


def test_config_without_loss_td_is_the_plain_model():
    cfg = _r18_cfg()
    cfg.cls_head.pop('loss_td')
    model = MODELS.build(cfg)
    assert model.backbone.aux_outputs == ()
    losses = model(**model.data_preprocessor(_batch(), True), mode='loss')
    assert 'loss_td' not in losses and 'loss_cls' in losses


class _TinyVideos(Dataset):

    def __init__(self, segments):
        self.segments = segments

    def __len__(self):
        return 4

    def __getitem__(self, index):
        batch = _batch(videos=1, segments=self.segments)
        batch['data_samples'][0].set_gt_label(index)
        return dict(inputs=batch['inputs'][0],
                    data_samples=batch['data_samples'][0])


def test_stock_runner_logs_both_losses(tmp_path):
    from mmengine.runner import Runner
    cfg = _r18_cfg(num_segments=4)
    runner = Runner(
        model=cfg,
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=_TinyVideos(segments=4),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate'),
            batch_size=2,
            num_workers=0),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1), checkpoint=None),
        default_scope='mmaction',
        # unique: MMEngine otherwise names the run (and shares its logger)
        # by the current second
        experiment_name=f'tdrl_losses_{uuid.uuid4().hex}')
    runner.train()
    hub = runner.message_hub
    assert hub.get_scalar('train/loss_td').current() > 0
    assert hub.get_scalar('train/loss_cls').current() > 0
    logs = glob.glob(osp.join(str(tmp_path), '*', '*.log'))
    text = open(logs[0]).read()
    assert 'loss_cls: ' in text and 'loss_td: ' in text


def test_wrong_segment_count_is_explained():
    model = MODELS.build(_r18_cfg())
    data = model.data_preprocessor(_batch(segments=3), True)
    with pytest.raises(ValueError, match='num_segments=8'):
        model(**data, mode='loss')
