# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Round trip: a checkpoint in the release's layout -> tools/convert ->
``init_recognizer`` -> the same class scores.

``ReleaseTSN`` (``tools/convert/release_tdn.py``, shared with the
benchmark) is an independent, deliberately plain re-statement of the
release's model (``ops/tdn_net.py``, ``ops/base_module.py``,
``ops/models.py``) with its module names, so its ``state_dict`` has the
release's keys: biased ResNet convs, ``conv1_temp``, ``conv1_5``,
``resnext_layer1``, ``layerN_bak`` with ``mse`` and ``shift``, ``new_fc``.
"""
import collections
import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn as nn
from conftest import load_tool
from mmengine import Config

from mmaction_tdx.models.utils.tdn_class_orders import STHV1_FROM_RELEASE

_release = load_tool('tools/convert/release_tdn.py')
ReleaseBottleneck, ReleaseTSN = _release.ReleaseBottleneck, _release.ReleaseTSN

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'convert', 'tdn_official.py')
CONFIG = osp.join(ROOT, 'configs', '_base_', 'models', 'tdn_r50.py')
NUM_CLASSES, SIZE = 174, 64


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomise(model, num_segments):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('shift.conv.weight'):
                param.normal_(0, 0.3)
            elif name.startswith('new_fc'):
                param.normal_(0, 0.02)  # trained heads give O(10) scores
            elif name.endswith('.bias') and param.dim() == 1:
                param.uniform_(-0.1, 0.1)
            elif param.dim() > 1:
                fan_in = param[0].numel()
                param.normal_(0, (2.0 / fan_in)**0.5)
        # Calibrate the BN statistics on random clips, then perturb the
        # affine parameters, so that every activation stays O(1).
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None
                m.reset_running_stats()
        model.train()
        model(torch.randn(2 * num_segments, 15, SIZE, SIZE))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
        # Small residual-branch scales, as in trained ResNets, keep the
        # features (and the scores) in a realistic range.
        for m in model.modules():
            if isinstance(m, ReleaseBottleneck):
                m.bn3.weight.uniform_(0.05, 0.25)
                m.bn3.bias.uniform_(-0.1, 0.1)
    return model.eval()


def _save_like_the_release(model, path):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=[30, 45, 55])
    torch.save(
        {
            'epoch': 60,
            'arch': 'resnet50',
            'state_dict': collections.OrderedDict(
                ('module.' + k, v) for k, v in model.state_dict().items()),
            'optimizer': optimizer.state_dict(),
            'scheduler': scheduler.state_dict(),
            'prec1': 52.3,
            'best_prec1': 52.3,
        }, path)


@pytest.fixture(scope='module')
def release_checkpoint(tmp_path_factory):
    model = _randomise(ReleaseTSN(8), 8)
    path = tmp_path_factory.mktemp('release') / 'best.pth.tar'
    _save_like_the_release(model, path)
    return model, path


def _tool_main(*args):
    spec = importlib.util.spec_from_file_location('tdn_official', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.main([str(a) for a in args])


def _scores_ours(checkpoint, num_segments, inputs, num_classes=NUM_CLASSES,
                 **ltdm):
    from mmaction.apis import init_recognizer
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.num_segments = num_segments
    cfg.model.cls_head.num_classes = num_classes
    if ltdm:
        cfg.model.backbone.long_term_tdm = dict(type='LongTermTDM', **ltdm)
    model = init_recognizer(cfg, str(checkpoint), device='cpu')
    with torch.no_grad():
        scores, _ = model.extract_feat(inputs, stage='head', test_mode=True)
    return scores


def _clip(num_segments, seed=1):
    torch.manual_seed(seed)
    # (N, T * 5, 3, H, W) as SampleFrames(clip_len=5) + FormatShape('NCHW')
    # give it (already normalised here).
    return torch.randn(1, num_segments * 5, 3, SIZE, SIZE)


@pytest.fixture(scope='module')
def converted(release_checkpoint, tmp_path_factory):
    _, path = release_checkpoint
    out = tmp_path_factory.mktemp('converted') / 'tdn_r50_sthv1.pth'
    assert _tool_main(path, out, '--label-order', 'sthv1') == 0
    return out


@pytest.mark.parametrize('num_segments,quirk', [(8, False), (4, False),
                                                (8, True)])
def test_round_trip_scores_match(release_checkpoint, converted, num_segments,
                                 quirk):
    """T = 8 uses the release's fusion weights (0.5, 0.5), any other T
    (0.75, 0.25); ``quirk``: the Dec-2020 L-TDM, for its checkpoints."""
    model, _ = release_checkpoint
    model.configure(num_segments, dec2020_quirk=quirk)
    inputs = _clip(num_segments)
    with torch.no_grad():
        expected = model(inputs.view(num_segments, 15, SIZE, SIZE))
    model.configure(8)
    # The converted head scores in MMAction2's V1 order.
    expected = expected[:, list(STHV1_FROM_RELEASE)]
    assert 1 < expected.abs().max() < 100  # realistic score range
    ltdm = dict(backward_full_scale_from_forward=True) if quirk else {}
    ours = _scores_ours(converted, num_segments, inputs, **ltdm)
    assert (ours - expected).abs().max() <= 1e-4
    if quirk:  # the fixed L-TDM really differs on such a checkpoint
        fixed = _scores_ours(converted, num_segments, inputs)
        assert (fixed - expected).abs().max() > 1e-3


def test_kinetics_checkpoint_converted_without_flags_scores_as_release(
        tmp_path, capsys):
    """400 classes, no --label-order: the classifier is kept in the
    release's order (= MMAction2's kinetics400.txt order), so the converted
    model scores every class exactly as the release model does, and the
    output says which order was written and why."""
    model = _randomise(ReleaseTSN(8, num_classes=400), 8)
    src = tmp_path / 'k400_best.pth.tar'
    _save_like_the_release(model, src)
    out = tmp_path / 'k400.pth'
    assert _tool_main(src, out) == 0
    summary = capsys.readouterr().out
    assert "Kinetics-400 in MMAction2's label-map order" in summary
    assert 'auto' in summary and 'kept as stored' in summary
    inputs = _clip(8, seed=3)
    with torch.no_grad():
        expected = model(inputs.view(8, 15, SIZE, SIZE))
    assert 1 < expected.abs().max() < 100
    ours = _scores_ours(out, 8, inputs, num_classes=400)
    assert (ours - expected).abs().max() <= 1e-4
    # The unverified third-party map is applied only when asked for, and
    # then permutes the classifier.
    from mmaction_tdx.models.utils.tdn_class_orders import (
        KINETICS400_FROM_THIRD_PARTY_MAP,
    )
    mapped = tmp_path / 'k400_mapped.pth'
    assert _tool_main(src, mapped, '--label-order',
                      'kinetics400-third-party-map') == 0
    assert 'UNVERIFIED' in capsys.readouterr().out
    weight = torch.load(mapped, weights_only=True)['state_dict'][
        'cls_head.fc_cls.weight']
    torch.testing.assert_close(
        weight, model.new_fc.weight.detach()[list(
            KINETICS400_FROM_THIRD_PARTY_MAP)])


def test_tool_summary_and_checkpoint(release_checkpoint, tmp_path, capsys):
    _, path = release_checkpoint
    out = tmp_path / 'release_order.pth'
    assert _tool_main(path, out, '--label-order', 'release') == 0
    summary = capsys.readouterr().out
    assert 'ResNet-50 TDN, 174 classes' in summary
    assert "release's order" in summary
    assert 'epoch=60' in summary and 'prec1=52.3' in summary
    # 53 convs in the RGB body, 10 in the motion path's layer1.
    assert '63 conv biases folded into BN' in summary
    assert '2 unused keys dropped' in summary  # conv1_temp.{weight,bias}
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint['meta']['depth'] == 50
    assert all(k.startswith(('backbone.', 'cls_head.'))
               for k in checkpoint['state_dict'])


def _convert_state(state, **kwargs):
    from mmaction_tdx.models.utils.tdn_checkpoint import (
        convert_release_state_dict,
        release_state_dict,
    )
    return convert_release_state_dict(
        release_state_dict({'state_dict': state}), **kwargs)


def test_errors_list_what_does_not_match(release_checkpoint):
    model, _ = release_checkpoint
    state = {'module.' + k: v for k, v in model.state_dict().items()}

    broken = dict(state)
    del broken['module.base_model.layer3_bak.2.mse.conv2.weight']
    del broken['module.base_model.bn1.running_var']
    broken['module.base_model.extra.weight'] = torch.zeros(1)
    broken['module.base_model.layer4_bak.0.shift.conv.weight'] = \
        torch.zeros(3)
    with pytest.raises(ValueError) as err:
        _convert_state(broken, label_order='sthv1')
    message = str(err.value)
    for part in ('missing (2)', 'layer3_bak.2.mse.conv2.weight',
                 'base_model.bn1.running_var', 'unexpected (1)',
                 'base_model.extra.weight', 'shape mismatch (1)',
                 'layer4_bak.0.shift.conv.weight'):
        assert part in message

    with pytest.raises(ValueError, match='ResNet-50 TDN .* depth 101'):
        _convert_state(state, depth=101, label_order='sthv1')
    with pytest.raises(ValueError, match='--label-order sthv1'):
        _convert_state(state)
    with pytest.raises(ValueError, match='(?i)not a TDN release'):
        _convert_state({'module.conv1.weight': torch.zeros(1)})


def test_tool_rejects_wrong_files(tmp_path, capsys):
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint')
    assert _tool_main(text, tmp_path / 'out.pth') == 1
    assert 'not a PyTorch checkpoint' in capsys.readouterr().err

    other = tmp_path / 'other.pth'
    torch.save({'model': {'w': torch.zeros(1)}}, other)
    assert _tool_main(other, tmp_path / 'out.pth') == 1
    assert 'state_dict' in capsys.readouterr().err
    assert not (tmp_path / 'out.pth').exists()


class _NotAllowed:
    pass


def test_loader_refuses_unexpected_pickled_objects(tmp_path):
    from mmaction_tdx.models.utils.tdn_checkpoint import (
        load_release_checkpoint,
    )
    path = tmp_path / 'hostile.pth'
    torch.save({'state_dict': {}, 'payload': _NotAllowed()}, path)
    with pytest.raises(ValueError, match='not a checkpoint of MCG-NJU/TDN'):
        load_release_checkpoint(str(path))


def test_tool_converts_many_files_with_progress(release_checkpoint, tmp_path,
                                                capsys):
    """``IN... --out-dir``: one output per input, a progress bar, a summary
    line, and a bad input reported without stopping the others."""
    import shutil
    _, path = release_checkpoint
    first, second = tmp_path / 'k400_a.pth.tar', tmp_path / 'k400_b.pth'
    shutil.copy(path, first)
    shutil.copy(path, second)
    bad = tmp_path / 'notes.txt'
    bad.write_text('not a checkpoint')
    out_dir = tmp_path / 'converted'
    assert _tool_main(first, bad, second, '--out-dir', out_dir,
                      '--label-order', 'release') == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in out_dir.iterdir()) == [
        'k400_a.pth', 'k400_b.pth']
    assert '3/3' in captured.out  # MMEngine's progress bar
    assert 'converted 2/3 checkpoints -> ' in captured.out
    assert '(1 failed)' in captured.out
    assert 'notes.txt' in captured.err
    converted = torch.load(out_dir / 'k400_b.pth', weights_only=True)
    assert converted['meta']['depth'] == 50


def test_tool_many_files_need_out_dir(tmp_path):
    with pytest.raises(SystemExit):
        _tool_main(tmp_path / 'a.pth.tar', tmp_path / 'b.pth.tar',
                   tmp_path / 'c.pth.tar')


def test_metafile_links_the_ten_release_checkpoints():
    """Weights (and a conversion command with the dataset's class order)
    for each of the ten checkpoints of the release's model zoo."""
    import yaml
    spec = importlib.util.spec_from_file_location('tdn_official', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with open(osp.join(ROOT, 'configs', 'tdn', 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    weighted = {m['Config']: m for m in models if m.get('Weights')}
    assert len(weighted) == 10, sorted(weighted)
    orders = {'sthv1': 'sthv1', 'sthv2': 'sthv2', 'kinetics400': 'auto'}
    for config, model in weighted.items():
        command = model['Weights Conversion'].replace(
            '<checkpoint in Weights>', 'release.pth.tar').split()
        assert command[:2] == ['python', 'tools/convert/tdn_official.py']
        args = tool.parse_args(command[2:])
        name = osp.splitext(osp.basename(config))[0]
        assert args.dst == f'checkpoints/{name}.pth'
        dataset = name.rsplit('_', 1)[1][:-len('-rgb')]
        assert args.label_order == orders[dataset], config
        assert osp.exists(osp.join(ROOT, config))
