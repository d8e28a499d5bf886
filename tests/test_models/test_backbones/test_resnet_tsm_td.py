# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""ResNetTSMTD: MMAction2's TSM with the TD loss on the shifted inputs."""
# mmaction_tdx first: its compat fixes make `mmaction.models` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import os.path as osp

import pytest
import torch
from mmaction.models.backbones.resnet_tsm import ResNetTSM
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope

T = 4
CONFIG = osp.join(
    osp.dirname(__file__), '..', '..', '..', 'configs', 'quickstart',
    'tsm-td_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py')


def _backbone(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='ResNetTSMTD', depth=18, num_segments=T,
               pretrained2d=False)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_is_upstream_tsm_with_td_features_after_the_shift():
    model = _backbone()
    upstream = ResNetTSM(18, num_segments=T, pretrained2d=False)
    assert list(model.state_dict()) == list(upstream.state_dict())
    upstream.load_state_dict(model.state_dict())
    x = torch.randn(2 * T, 3, 32, 32)
    model.eval(), upstream.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), upstream(x), rtol=0, atol=0)
    # TD features: what each chosen block's shifted conv receives.
    seen = []
    for layer in (model.layer2, model.layer3, model.layer4):
        layer[-1].conv1.conv.net.register_forward_pre_hook(
            lambda module, args: seen.append(args[0]))
    model.request_aux_outputs(('td_features', ))
    model.train()
    feats, aux = model.forward_with_aux(x.requires_grad_())
    assert torch.is_tensor(model(x))  # forward stays plain in training
    assert len(aux['td_features']) == 3
    for z, hooked in zip(aux['td_features'], seen[:3]):
        assert torch.equal(z, hooked)
    aux['td_features'][0].square().sum().backward()
    assert model.layer2[0].conv1.conv.net.weight.grad.abs().sum() > 0


def test_td_blocks_must_be_shifted():
    with pytest.raises(ValueError, match='no temporal shift'):
        _backbone(is_shift=False)
    with pytest.raises(ValueError, match=r'td_blocks\[1\].*\[-2, 1\]'):
        _backbone(td_blocks=((), (2, ), (), ()))
    assert _backbone(is_shift=False, td_blocks=((), ) * 4).td_blocks == \
        ((), ) * 4


def test_quickstart_config_trains_with_td_loss():
    init_default_scope('mmaction')
    model = MODELS.build(Config.fromfile(CONFIG).model)
    inputs = torch.randint(0, 255, (2, T, 3, 32, 32)).float()
    data = model.data_preprocessor(
        dict(inputs=list(inputs),
             data_samples=[ActionDataSample().set_gt_label(i)
                           for i in range(2)]), True)
    losses = model(**data, mode='loss')
    assert {'loss_cls', 'loss_td'} <= set(losses) and losses['loss_td'] > 0
    assert not model.backbone._forward_hooks
