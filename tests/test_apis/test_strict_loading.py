# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Inference refuses a checkpoint of another model (issue 21 item 4): the
API, ``demo/demo.py``, the visualisation tools and the class-order check
stop with the listing training uses, unless told ``strict=False`` /
``--no-strict``. Models: ResNet-18, 2 segments (the sizes only matter for
the keys)."""
import os.path as osp

import pytest
import torch
from conftest import load_tool

from mmaction_tdx.apis import (
    CheckpointMismatchError,
    init_video_recognizer,
    load_checkpoint_strict,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODELS = osp.join(ROOT, 'configs', '_base_', 'models')
SMALL = {
    'model.backbone.depth': 18,
    'model.backbone.num_segments': 2,
    'model.cls_head.in_channels': 512,
}
TDN, TDRL = osp.join(MODELS, 'tdn_r50.py'), osp.join(MODELS, 'tdrl_r50.py')


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A TDRL checkpoint, and one of the same TDRL with a 10-class head."""
    folder = tmp_path_factory.mktemp('strict')
    paths = {}
    for name, extra in (('tdrl', {}), ('tdrl10', {
            'model.cls_head.num_classes': 10})):
        model = init_video_recognizer(TDRL, None, 'cpu', {**SMALL, **extra})
        paths[name] = str(folder / f'{name}.pth')
        torch.save({'state_dict': model.state_dict(), 'meta': {}},
                   paths[name])
    return paths


def test_api_refuses_another_models_checkpoint(checkpoints):
    with pytest.raises(CheckpointMismatchError) as info:
        init_video_recognizer(TDN, checkpoints['tdrl'], 'cpu', SMALL)
    message = str(info.value)
    assert 'does not fit the model of' in message and 'tdn_r50.py' in message
    # the training hook's listing: whole modules collapsed, counts given
    assert 'missing in the checkpoint:' in message
    assert 'unexpected (not in the model):' in message
    assert 'backbone.stdm.* (' in message
    assert 'strict=False' in message and '--no-strict' in message


def test_api_refuses_a_head_of_another_size(checkpoints):
    with pytest.raises(CheckpointMismatchError) as info:
        init_video_recognizer(TDRL, checkpoints['tdrl10'], 'cpu', SMALL)
    assert ('cls_head.fc_cls.weight: (10, 512) vs (400, 512)'
            in str(info.value))


def test_the_right_checkpoint_loads_and_no_strict_loads_what_fits(
        checkpoints):
    state = torch.load(checkpoints['tdrl'])['state_dict']
    model = init_video_recognizer(TDRL, checkpoints['tdrl'], 'cpu', SMALL)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], msg=key)
    with pytest.warns(UserWarning, match='does not fit'):
        model = init_video_recognizer(
            TDRL, checkpoints['tdrl10'], 'cpu', SMALL, strict=False)
    state10 = torch.load(checkpoints['tdrl10'])['state_dict']
    torch.testing.assert_close(model.backbone.conv1.conv.weight,
                               state10['backbone.conv1.conv.weight'])
    assert model.cls_head.fc_cls.weight.shape == (400, 512)


def test_load_checkpoint_strict_strips_module_prefix(checkpoints, tmp_path):
    state = torch.load(checkpoints['tdrl'])['state_dict']
    wrapped = tmp_path / 'ddp.pth'
    torch.save({'state_dict': {f'module.{k}': v
                               for k, v in state.items()}}, wrapped)
    model = init_video_recognizer(TDRL, None, 'cpu', SMALL)
    load_checkpoint_strict(model, str(wrapped))
    torch.testing.assert_close(model.cls_head.fc_cls.bias,
                               state['cls_head.fc_cls.bias'])


def _options():
    return ['--cfg-options'] + [f'{k}={v}' for k, v in SMALL.items()]


@pytest.mark.parametrize('tool,argv', [
    ('demo/demo.py', ['{ckpt}', 'VIDEO', 'LABELS', '--device', 'cpu']),
    ('tools/visualizations/vis_pem_channels.py',
     ['{ckpt}', 'VIDEO', '--out', 'x.png']),
    ('tools/visualizations/vis_cam.py',
     ['{ckpt}', 'VIDEO', '--out-filename', 'x.png']),
])
def test_clis_exit_1_naming_the_mismatch(checkpoints, tool, argv, tmp_path,
                                         capsys):
    labels = tmp_path / 'labels.txt'
    labels.write_text('\n'.join(f'c{i}' for i in range(400)))
    video = tmp_path / 'v.mp4'
    video.write_bytes(b'')  # never read: loading stops first
    argv = [a.format(ckpt=checkpoints['tdrl']).replace(
        'VIDEO', str(video)).replace('LABELS', str(labels)) for a in argv]
    code = load_tool(tool).main([TDN, *argv, *_options()])
    err = capsys.readouterr().err
    assert code == 1
    assert 'does not fit' in err and 'Traceback' not in err


def test_check_class_order_refuses_and_has_no_strict(checkpoints, tmp_path,
                                                     capsys):
    tool = load_tool('tools/convert/check_class_order.py')
    code = tool.main([TDN, checkpoints['tdrl'], str(tmp_path / 'list.txt')])
    assert code == 1
    assert 'does not fit' in capsys.readouterr().err
    assert tool.parse_args(['c', 'k', 'l', '--no-strict']).no_strict
