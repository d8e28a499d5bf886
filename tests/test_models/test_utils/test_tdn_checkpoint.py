# Copyright (c) mmaction_tdx contributors. All rights reserved.
import collections
import io
import os
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import load_tool

from mmaction_tdx.compat.safe_checkpoint import load_checkpoint_file
from mmaction_tdx.models.utils.tdn_checkpoint import (
    convert_release_checkpoint,
    convert_release_state_dict,
    fold_conv_bias,
    infer_release_depth,
    load_release_checkpoint,
    release_key,
    release_state_dict,
    resolve_class_order,
    torchvision_resnet_key,
)
from mmaction_tdx.models.utils.tdn_class_orders import (
    KINETICS400_FROM_THIRD_PARTY_MAP,
    LABEL_ORDERS,
    STHV1_FROM_RELEASE,
    STHV2_FROM_RELEASE,
    check_permutation,
    permutation_by_name,
    read_class_names,
)

LABEL_MAPS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(
        __file__))))), '..', 'shared', 'data', 'label_maps')


@pytest.mark.parametrize('ours,theirs', [
    ('conv1.conv.weight', 'conv1.weight'),
    ('conv1.bn.running_var', 'bn1.running_var'),
    ('layer3.4.conv2.conv.weight', 'layer3.4.conv2.weight'),
    ('layer3.4.conv2.bn.bias', 'layer3.4.bn2.bias'),
    ('layer2.0.downsample.conv.weight', 'layer2.0.downsample.0.weight'),
    ('layer2.0.downsample.bn.num_batches_tracked',
     'layer2.0.downsample.1.num_batches_tracked'),
    ('stdm.layer1.2.conv3.bn.weight', 'layer1.2.bn3.weight'),
    ('stdm.stem.conv.weight', None),
    ('layer2.0.ltdm.squeeze.conv.weight', None),
    ('layer2.0.temporal.conv.weight', None),
])
def test_torchvision_keys(ours, theirs):
    assert torchvision_resnet_key(ours) == theirs


@pytest.mark.parametrize('ours,theirs', [
    ('conv1.conv.weight', 'base_model.conv1.weight'),
    ('conv1.bn.running_mean', 'base_model.bn1.running_mean'),
    ('stdm.stem.conv.weight', 'base_model.conv1_5.0.weight'),
    ('stdm.stem.bn.running_var', 'base_model.conv1_5.1.running_var'),
    ('stdm.layer1.0.downsample.bn.weight',
     'base_model.resnext_layer1.0.downsample.1.weight'),
    ('layer1.2.conv3.conv.weight', 'base_model.layer1_bak.2.conv3.weight'),
    ('layer4.0.downsample.conv.weight',
     'base_model.layer4_bak.0.downsample.0.weight'),
    ('layer2.1.ltdm.squeeze.conv.weight',
     'base_model.layer2_bak.1.mse.conv1.weight'),
    ('layer2.1.ltdm.squeeze.bn.running_mean',
     'base_model.layer2_bak.1.mse.bn1.running_mean'),
    ('layer3.5.ltdm.align.weight', 'base_model.layer3_bak.5.mse.conv2.weight'),
    ('layer3.5.ltdm.full_scale.conv.weight',
     'base_model.layer3_bak.5.mse.conv3_smallscale4.weight'),
    ('layer3.5.ltdm.half_scale.bn.bias',
     'base_model.layer3_bak.5.mse.bn3_smallscale2.bias'),
    ('layer4.2.ltdm.expand.conv.weight',
     'base_model.layer4_bak.2.mse.conv3.weight'),
    ('layer4.2.ltdm.expand.bn.weight',
     'base_model.layer4_bak.2.mse.bn3.weight'),
    ('layer4.2.temporal.conv.weight',
     'base_model.layer4_bak.2.shift.conv.weight'),
    ('stdm.layer2.0.conv1.conv.weight', None),  # not in the release
    ('layer2.0.temporal.conv.bias', None),  # the release's shift: no bias
    # A module prefix maps, the rest of the key is kept, dots and all (a
    # parametrized weight, torch's weight_norm).
    ('stdm.stem.conv.parametrizations.weight.original0',
     'base_model.conv1_5.0.parametrizations.weight.original0'),
    ('stdm.stem.bn.a.b', 'base_model.conv1_5.1.a.b'),
    ('layer2.1.ltdm.squeeze.conv.parametrizations.weight.original1',
     'base_model.layer2_bak.1.mse.conv1.parametrizations.weight.original1'),
])
def test_release_keys(ours, theirs):
    assert release_key(ours) == theirs


@pytest.mark.parametrize('train', [False, True])
def test_folding_conv_bias_into_bn_is_exact(train):
    """BN(Wx + b) with (mu, var) == BN(Wx) with (mu - b, var), in eval and
    in training (where the running means then stay exactly b apart)."""
    torch.manual_seed(0)
    conv_b = nn.Conv2d(8, 16, 3, padding=1, bias=True).double()
    bn_b = nn.BatchNorm2d(16).double()
    with torch.no_grad():
        conv_b.bias.uniform_(-2, 2)
        bn_b.running_mean.uniform_(-1, 1)
        bn_b.running_var.uniform_(0.5, 2)
        bn_b.weight.uniform_(0.5, 1.5)
        bn_b.bias.uniform_(-1, 1)
    conv = nn.Conv2d(8, 16, 3, padding=1, bias=False).double()
    bn = nn.BatchNorm2d(16).double()
    conv.weight.data.copy_(conv_b.weight.data)
    bn.load_state_dict(bn_b.state_dict())
    bn.running_mean.copy_(fold_conv_bias(bn_b.running_mean, conv_b.bias))

    x = torch.randn(4, 8, 5, 5, dtype=torch.float64)
    for module in (conv_b, bn_b, conv, bn):
        module.train(train)
    with torch.no_grad():
        torch.testing.assert_close(
            bn(conv(x)), bn_b(conv_b(x)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        bn.running_mean,
        bn_b.running_mean - conv_b.bias.detach(),
        rtol=1e-12,
        atol=1e-12)
    torch.testing.assert_close(bn.running_var, bn_b.running_var)


def test_class_order_constants_are_permutations():
    check_permutation(STHV1_FROM_RELEASE, 174)
    check_permutation(KINETICS400_FROM_THIRD_PARTY_MAP, 400)
    assert STHV2_FROM_RELEASE == tuple(range(174))
    with pytest.raises(ValueError, match='exactly once'):
        check_permutation([0, 0, 1], 3)


def test_third_party_kinetics_order_spot_checks():
    """The third-party kinetics-400-map.txt order starts ice_skating,
    sticking_tongue_out, belly_dancing and ends clay_pottery_making;
    MMAction2's is alphabetical."""
    names = read_class_names(osp.join(LABEL_MAPS, 'kinetics400.txt'))
    assert names == sorted(names)
    perm = KINETICS400_FROM_THIRD_PARTY_MAP
    assert perm[names.index('ice skating')] == 0
    assert perm[names.index('sticking tongue out')] == 1
    assert perm[names.index('belly dancing')] == 2
    assert perm[names.index('clay pottery making')] == 399
    assert perm[names.index('arm wrestling')] == 215


def test_sthv1_order_regenerates_from_label_maps():
    v1 = read_class_names(osp.join(LABEL_MAPS, 'sthv1_mmaction_order.txt'))
    assert tuple(permutation_by_name(sorted(v1), v1)) == STHV1_FROM_RELEASE
    v2 = read_class_names(osp.join(LABEL_MAPS, 'sthv2_mmaction_order.txt'))
    assert v2 == sorted(v1)  # the release's (alphabetical) order is V2's


def test_permutation_by_name():
    assert permutation_by_name(['b_c', 'a'], ['a', 'b c']) == [1, 0]
    with pytest.raises(ValueError, match='differ'):
        permutation_by_name(['a', 'b'], ['a', 'c'])


def test_resolve_class_order():
    """auto applies verified orders only, and says which and why."""
    perm, why = resolve_class_order(400)
    assert perm == list(range(400))  # the release's order is MMAction2's
    assert 'kinetics400.txt' in why and 'auto' in why
    assert resolve_class_order(400, 'kinetics400')[0] == list(range(400))
    perm, why = resolve_class_order(400, 'kinetics400-third-party-map')
    assert perm == list(KINETICS400_FROM_THIRD_PARTY_MAP)
    assert 'UNVERIFIED' in why
    perm, why = resolve_class_order(174, 'sthv1')
    assert perm == list(STHV1_FROM_RELEASE) and 'remapped' in why
    assert resolve_class_order(174, 'sthv2')[0] == list(range(174))
    assert resolve_class_order(51)[0] == list(range(51))
    assert resolve_class_order(3, class_map=[2, 0, 1])[0] == [2, 0, 1]
    with pytest.raises(ValueError, match='sthv1.*sthv2'):
        resolve_class_order(174)
    with pytest.raises(ValueError, match='400'):
        resolve_class_order(174, 'kinetics400')
    with pytest.raises(ValueError, match='Unknown label order'):
        resolve_class_order(174, 'ucf101')


def test_only_the_third_party_map_is_unverified():
    assert [name for name, order in LABEL_ORDERS.items()
            if not order.verified] == ['kinetics400-third-party-map']


@pytest.mark.parametrize('perm,problem', [
    # distinct, right length, but class 2 missing and row 5 absent
    ([0, 1, 5], r'entry 2 is 5, outside 0\.\.2'),
    ([0, 1, 3], r'entry 2 is 3, outside 0\.\.2'),  # K itself
    ([0, 0, 1], r'index 0 is listed twice .*missing: \[2\]'),
    ([2, 1, 2], r'index 2 is listed twice \(entries 0 and 2\)'),
    ([-1, 0, 1], r'entry 0 is -1, outside'),
    ([0, 1], 'it has 2 entries for 3 classes'),
    ([2, 0, 1, 3], 'it has 4 entries for 3 classes'),
    ([], 'it has 0 entries for 3 classes'),
    ([0, 1.0, 2], r'entry 1 is 1\.0, not an integer'),
    ([0, 2.7, 1], r'entry 1 is 2\.7, not an integer'),
    ([0, True, 2], 'entry 1 is True, not an integer'),
    ([0, '1', 2], "entry 1 is '1', not an integer"),
    (np.array([0., 1., 2.]), 'entry 0 is .*0.0.*not an integer'),
    ('012', "got a string, '012'"),
])
def test_check_permutation_refuses_adversarial_maps(perm, problem):
    """Only a permutation of range(K) passes, whatever else the entries
    get right (count, distinctness, length)."""
    with pytest.raises(ValueError, match='Invalid class map: ' + problem) \
            as info:
        check_permutation(perm, 3)
    assert 'the 3 class indices 0..2 exactly once' in str(info.value)
    assert 'fix the map or its file' in str(info.value)
    with pytest.raises(ValueError, match='Invalid class map'):
        resolve_class_order(3, class_map=perm)


def test_check_permutation_accepts_and_normalises():
    assert check_permutation([2, 0, 1], 3) == [2, 0, 1]
    out = check_permutation(np.array([1, 0], dtype=np.int64), 2)
    assert out == [1, 0] and all(type(v) is int for v in out)
    assert check_permutation((0, ), 1) == [0]
    assert check_permutation([], 0) == []
    perm, why = resolve_class_order(3, class_map=np.array([1, 2, 0]))
    assert perm == [1, 2, 0] and 'class map' in why


def test_permutation_by_name_refuses_duplicates(tmp_path):
    """A name listed twice is refused on either side, even when the sets
    of names agree; names are read verbatim (UTF-8, only the line end
    stripped) and compared with ``_`` and runs of spaces as one space."""
    with pytest.raises(ValueError, match='^Duplicate class names in the '
                       r'source list\.$'):
        permutation_by_name(['a', 'a_b', 'a b'], ['a', 'a b', 'a b'])
    with pytest.raises(ValueError, match=r'differ.*\(2 vs 2 classes\)'):
        permutation_by_name(['a', 'b'], ['a', 'a'])
    with pytest.raises(ValueError, match=r'differ.*\(2 vs 3 classes\)'):
        permutation_by_name(['a', 'b'], ['a', 'a', 'b'])
    path = tmp_path / 'names.txt'
    path.write_bytes('Zürich BOX\r\n\nsquat_X\n'.encode('utf-8'))
    assert read_class_names(str(path)) == ['Zürich BOX', 'squat_X']
    assert permutation_by_name(['squat  x', 'b'], ['b', 'squat_x']) == [1, 0]
    with pytest.raises(ValueError, match=r"target only: \['c d'\], in the "
                       r"source only: \['a b'\]"):
        permutation_by_name(['a_b'], ['c__d '])


def test_long_listings_in_messages_are_cut_at_ten():
    """Messages list at most 10 names or indices (and 40 characters of a
    string given as a map), whatever the size of the problem."""
    source = [f'a{i:02d}' for i in range(12)]
    target = [f'b{i:02d}' for i in range(12)]
    with pytest.raises(ValueError) as info:
        permutation_by_name(source, target)
    assert str(info.value) == (
        f'The class lists differ: in the target only: {target[:10]}, in the '
        f'source only: {source[:10]} (12 vs 12 classes).')
    with pytest.raises(ValueError, match=r'missing: \[1, 2, 3, 4, 5, 6, 7, '
                       r'8, 9, 10\]\.'):
        check_permutation([0] * 12, 12)
    with pytest.raises(ValueError, match="got a string, '" + '7' * 40 +
                       "'. "):
        check_permutation('7' * 50, 50)


def test_read_class_names_is_utf8_whatever_the_locale(tmp_path):
    """Label maps are UTF-8 files: read them as such under an ASCII locale
    too (``open()`` without an encoding would fail there)."""
    import subprocess
    import sys
    path = tmp_path / 'names.txt'
    path.write_bytes('Zürich\nb\n'.encode('utf-8'))
    # In this process too: mutmut runs a test on a function's mutants only
    # if the test calls it in-process.
    assert read_class_names(str(path)) == ['Zürich', 'b']
    module = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__))))), 'mmaction_tdx', 'models', 'utils',
        'tdn_class_orders.py')
    # The module file alone (stdlib imports only): a fast interpreter.
    # Under its own name, as mutation testing names the mutants.
    name = 'mmaction_tdx.models.utils.tdn_class_orders'
    code = ('import importlib.util, sys\n'
            f'spec = importlib.util.spec_from_file_location({name!r}, '
            f'{module!r})\n'
            'm = importlib.util.module_from_spec(spec)\n'
            'spec.loader.exec_module(m)\n'
            f'names = m.read_class_names({str(path)!r})\n'
            # ASCII source: the command line itself is decoded as ASCII.
            'print(names == ["Z\\u00fcrich", "b"])\n')
    # The parent's environment kept (mutation testing selects its mutant
    # through it), the locale made ASCII.
    env = dict(os.environ, LC_ALL='C', LANG='C', PYTHONCOERCECLOCALE='0',
               PYTHONUTF8='0', PYTHONIOENCODING='utf-8')
    result = subprocess.run([sys.executable, '-c', code], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'True'


K400_WHY = ("Kinetics-400 in MMAction2's label-map order (kinetics400.txt) "
            "({}: the release prepares Kinetics with MMAction2's data tools "
            'and defines no other order: kept as stored)')


@pytest.mark.parametrize('args,perm,why', [
    ((400, ), range(400), K400_WHY.format('auto')),
    ((400, 'kinetics400'), range(400), K400_WHY.format('chosen')),
    ((5, ), range(5), "the release's order, unchanged (auto: 5 classes is no "
     'dataset with a known remapping)'),
    ((174, 'release'), range(174), "the release's order, unchanged (chosen)"),
    ((3, 'release'), range(3), "the release's order, unchanged (chosen)"),
    ((3, 'sthv1', [1, 2, 0]), [1, 2, 0],
     'the order of the given class map (--class-map)'),
])
def test_class_order_reasons_verbatim(args, perm, why):
    assert resolve_class_order(*args) == (list(perm), why)


@pytest.mark.parametrize('name', ['sthv1', 'sthv2',
                                  'kinetics400-third-party-map'])
def test_chosen_class_order_says_what_and_why(name):
    order = LABEL_ORDERS[name]
    perm, why = resolve_class_order(len(order.perm), name)
    assert perm == list(order.perm)
    assert why == f'{order.description} (chosen: {order.reason})'


@pytest.mark.parametrize('args,message', [
    ((174, ), 'A 174-class checkpoint is Something-Something V1 or V2, whose '
     'MMAction2 class orders differ. Pass `--label-order sthv1` or '
     "`--label-order sthv2` (or `release` to keep the release's alphabetical"
     ' order).'),
    ((174, 'kinetics400'), "label order 'kinetics400' has 400 classes but "
     'the checkpoint has 174.'),
    ((3, 'ucf101'), "Unknown label order 'ucf101'; use one of ['auto', "
     "'release', 'sthv1', 'sthv2', 'kinetics400', "
     "'kinetics400-third-party-map']."),
    ((3, 'Release'), "Unknown label order 'Release'; use one of ['auto', "
     "'release', 'sthv1', 'sthv2', 'kinetics400', "
     "'kinetics400-third-party-map']."),
])
def test_class_order_errors_verbatim(args, message):
    with pytest.raises(ValueError) as info:
        resolve_class_order(*args)
    assert str(info.value) == message


# Release (ours -> theirs) pairs written out from the release's module
# names, independently of release_key: the L-TDM and temporal conv of
# layer2.0 (22 tensors besides the BN counters).
LAYER2_0_TEMPORAL = [
    (f'layer2.0.ltdm.{ours}.{attr}', f'layer2_bak.0.mse.{theirs}.{attr}')
    for ours, theirs, attrs in [
        ('squeeze.conv', 'conv1', ['weight']),
        ('squeeze.bn', 'bn1', ['weight', 'bias', 'running_mean',
                               'running_var']),
        ('align', 'conv2', ['weight']),
        ('full_scale.conv', 'conv3_smallscale4', ['weight']),
        ('full_scale.bn', 'bn3_smallscale4', ['weight', 'bias',
                                              'running_mean', 'running_var']),
        ('half_scale.conv', 'conv3_smallscale2', ['weight']),
        ('half_scale.bn', 'bn3_smallscale2', ['weight', 'bias',
                                              'running_mean', 'running_var']),
        ('expand.conv', 'conv3', ['weight']),
        ('expand.bn', 'bn3', ['weight', 'bias', 'running_mean',
                              'running_var']),
    ] for attr in attrs
] + [('layer2.0.temporal.conv.weight', 'layer2_bak.0.shift.conv.weight')]


# The summary of converting it with a class map: 724 tensors of the
# recognizer, 63 conv biases folded (53 in the RGB body, 10 in the motion
# path), conv1_temp dropped.
SUMMARY = dict(
    depth=50,
    num_classes=3,
    tensors=724,
    folded_conv_biases=63,
    dropped_keys=['base_model.conv1_temp.bias',
                  'base_model.conv1_temp.weight'],
    class_order='the order of the given class map (--class-map)')


@pytest.fixture(scope='module')
def release_state():
    """A 3-class ResNet-50 TDN state dict as the release's main.py saves it
    (``module.`` keys), from the independent re-statement of the release
    in tools/convert/release_tdn.py. Conv biases in [1, 2), running means
    in [-0.5, 0.5) and BN counters at 7, so that a bias not folded, folded
    twice or with the wrong sign, and a counter not copied, all show."""
    release = load_tool('tools/convert/release_tdn.py')
    torch.manual_seed(0)
    model = release.ReleaseTSN(8, num_classes=3)
    state = model.state_dict()
    out = collections.OrderedDict()
    for key, value in state.items():
        weight = state.get(key[:-len('bias')] + 'weight')
        if key.endswith('.bias') and weight.dim() == 4:
            value = torch.rand_like(value) + 1
        elif key.endswith('running_mean'):
            value = torch.rand_like(value) - 0.5
        elif key.endswith('num_batches_tracked'):
            value = torch.tensor(7)
        out['module.' + key] = value
    return out


def _conv_bias_keys(state):
    """Release keys of conv biases: a ``.bias`` next to a 4-D weight."""
    return [
        k for k in state if k.endswith('.bias')
        and state[k[:-len('bias')] + 'weight'].dim() == 4
        and not k.startswith('base_model.conv1_temp.')
    ]


def test_convert_release_state_dict_copies_folds_and_permutes(
        release_state):
    state = release_state_dict({'state_dict': release_state, 'epoch': 1})
    assert len(state) == len(release_state) == 789
    assert all(k.startswith(('base_model.', 'new_fc.')) for k in state)
    # class_map overrides label_order (sthv1 has 174 classes, not 3).
    converted, summary = convert_release_state_dict(
        state, depth=50, label_order='sthv1', class_map=[2, 0, 1])
    biases = _conv_bias_keys(state)
    assert len(biases) == 63  # 53 in the RGB body, 10 in the motion path
    assert summary == SUMMARY
    assert len(converted) == 724
    assert all(k.startswith(('backbone.', 'cls_head.')) for k in converted)
    copied = [('conv1.conv.weight', 'conv1.weight'),
              ('stdm.stem.conv.weight', 'conv1_5.0.weight'),
              ('stdm.stem.bn.running_mean', 'conv1_5.1.running_mean'),
              ('stdm.layer1.0.conv1.conv.weight',
               'resnext_layer1.0.conv1.weight'),
              ('layer3.5.conv2.bn.running_var',
               'layer3_bak.5.bn2.running_var'),
              ('layer1.0.conv1.bn.num_batches_tracked',
               'layer1_bak.0.bn1.num_batches_tracked')] + LAYER2_0_TEMPORAL
    for ours, theirs in copied:
        assert torch.equal(converted['backbone.' + ours],
                           state['base_model.' + theirs]), ours
    for mean, conv in [('conv1.bn', 'conv1'),
                       ('layer1.0.downsample.bn', 'layer1_bak.0.downsample.0'),
                       ('stdm.layer1.2.conv3.bn', 'resnext_layer1.2.conv3'),
                       ('layer4.2.conv2.bn', 'layer4_bak.2.conv2')]:
        theirs = conv.replace('conv', 'bn').replace('downsample.0',
                                                    'downsample.1')
        if conv.startswith('resnext'):
            theirs = 'resnext_layer1.2.bn3'
        assert torch.equal(
            converted[f'backbone.{mean}.running_mean'],
            state[f'base_model.{theirs}.running_mean'] -
            state[f'base_model.{conv}.bias']), mean
    for name in ('weight', 'bias'):
        head = converted[f'cls_head.fc_cls.{name}']
        assert torch.equal(head, state[f'new_fc.{name}'][[2, 0, 1]])
        assert head.is_contiguous()
    # Everything else: each tensor copied once, each conv bias subtracted
    # once (float64 sums; the biases are >= 1, so one miss shows).
    total = sum(v.double().sum() for v in converted.values())
    expected = sum(v.double().sum() for k, v in state.items()
                   if not k.startswith('base_model.conv1_temp.')) - \
        2 * sum(state[k].double().sum() for k in biases)
    assert abs(float(total - expected)) < 1e-2
    # Copies: converting twice or editing the result leaves the input as is.
    sources = {v.untyped_storage().data_ptr() for v in state.values()}
    assert not any(v.untyped_storage().data_ptr() in sources
                   for v in converted.values())


def test_convert_release_state_dict_lists_what_does_not_match(
        release_state):
    state = release_state_dict({'state_dict': release_state})
    for _, theirs in LAYER2_0_TEMPORAL[:21]:  # the L-TDM's 21 tensors
        del state['base_model.' + theirs]
    state['base_model.layer4_bak.0.shift.conv.weight'] = torch.zeros(3)
    for i in range(20):
        state[f'base_model.extra{19 - i:02d}'] = torch.zeros(1)
    # Without the BN counters (old PyTorch): they start at 0, not missing.
    for key in [k for k in state if k.endswith('num_batches_tracked')]:
        del state[key]
    with pytest.raises(ValueError) as info:
        convert_release_state_dict(state, label_order='release')
    lines = str(info.value).split('\n')
    assert lines[:2] == [
        'The checkpoint does not match a ResNet-50 TDN of the release '
        '(ResNetTDN default design):', '  missing (21):']
    shown = lines[2:22]
    assert shown[-1].endswith(' ... and 1 more')
    shown[-1] = shown[-1][:-len(' ... and 1 more')]
    assert len(set(shown)) == 20
    assert set(shown) <= {
        f'    base_model.{theirs} (for backbone.{ours})'
        for ours, theirs in LAYER2_0_TEMPORAL
    }
    assert lines[22:] == [
        '  shape mismatch (1):',
        '    base_model.layer4_bak.0.shift.conv.weight: (3,), expected '
        '(512, 1, 3) for backbone.layer4.0.temporal.conv.weight',
        '  unexpected (20):',
    ] + [f'    base_model.extra{i:02d}' for i in range(20)]


def test_convert_release_state_dict_refuses_a_shape_mismatch_alone(
        release_state):
    state = release_state_dict({'state_dict': release_state})
    state['base_model.layer4_bak.0.shift.conv.weight'] = torch.zeros(3)
    with pytest.raises(ValueError) as info:
        convert_release_state_dict(state, label_order='release')
    assert str(info.value) == (
        'The checkpoint does not match a ResNet-50 TDN of the release '
        '(ResNetTDN default design):\n  shape mismatch (1):\n    '
        'base_model.layer4_bak.0.shift.conv.weight: (3,), expected '
        '(512, 1, 3) for backbone.layer4.0.temporal.conv.weight')


@pytest.mark.parametrize('blocks,depth', [(6, 50), (23, 101)])
def test_infer_release_depth(blocks, depth):
    state = {f'base_model.layer3_bak.{i}.conv1.weight': torch.zeros(1)
             for i in range(blocks)}
    # Other stages and keys that only look like layer3's do not count.
    state.update({
        'base_model.layer4_bak.30.conv1.weight': torch.zeros(1),
        'base_model.layer3_bak.40': torch.zeros(1),
        'x.base_model.layer3_bak.50.conv1.weight': torch.zeros(1),
        'base_model.layer3_bak.bn.60.weight': torch.zeros(1),
    })
    assert infer_release_depth(state) == depth


@pytest.mark.parametrize('keys,blocks', [
    ([], 0), (['layer3_bak.0.x'], 1), (['layer3_bak.4.x'], 5),
    (['layer3_bak.6.x'], 7), (['layer3_bak.22.x', 'layer3_bak.0.x'], 23),
])
def test_infer_release_depth_refuses_other_depths(keys, blocks):
    state = {'base_model.' + k: torch.zeros(1) for k in keys}
    if blocks == 23:
        assert infer_release_depth(state) == 101  # the last block counts
        return
    with pytest.raises(ValueError) as info:
        infer_release_depth(state)
    assert str(info.value) == (
        f'The checkpoint has {blocks} blocks in layer3; the release has '
        'ResNet-50 (6) and ResNet-101 (23) only.')


def test_conversion_errors_before_building_a_model(release_state):
    """Depth, classifier and class order are checked first (verbatim)."""
    state = release_state_dict(release_state)
    with pytest.raises(ValueError) as info:
        convert_release_state_dict(state, depth=101, label_order='release')
    assert str(info.value) == ('The checkpoint is a ResNet-50 TDN (layer3 '
                               'has 6 blocks), but depth 101 was requested.')
    deep = dict(state)
    deep.update({f'base_model.layer3_bak.{i}.conv1.weight': torch.zeros(1)
                 for i in range(23)})
    with pytest.raises(ValueError) as info:
        convert_release_state_dict(deep, depth=50)
    assert str(info.value) == ('The checkpoint is a ResNet-101 TDN (layer3 '
                               'has 23 blocks), but depth 50 was requested.')
    # The classifier: new_fc first, base_model.fc without it; the number of
    # classes is its number of rows (sthv1 wants 174).
    headless = {k: v for k, v in state.items() if not k.startswith('new_fc')}
    with pytest.raises(ValueError) as info:
        convert_release_state_dict(headless, label_order='sthv1')
    assert str(info.value) == ('The checkpoint has no classifier '
                               '(`new_fc.weight` or `base_model.fc.weight`).')
    # The default order is 'auto', which asks which 174-class dataset.
    sth = dict(headless, **{'new_fc.weight': torch.zeros(174, 2048)})
    with pytest.raises(ValueError, match='^A 174-class checkpoint is '):
        convert_release_state_dict(sth)
    fc_only = dict(headless, **{'base_model.fc.weight': torch.zeros(5, 2048)})
    both = dict(state, **{'base_model.fc.weight': torch.zeros(5, 2048)})
    for source, classes in ((fc_only, 5), (both, 3)):
        with pytest.raises(ValueError) as info:
            convert_release_state_dict(source, depth=50, label_order='sthv1')
        assert str(info.value) == ("label order 'sthv1' has 174 classes but "
                                   f'the checkpoint has {classes}.')


def test_release_state_dict_accepts_the_release_layout_only():
    t = torch.zeros(1)
    # A bare state dict, with or without the DDP prefix; only a leading
    # `module.` goes, once.
    assert sorted(release_state_dict({
        'module.base_model.conv1_5.0.weight': t,
        'base_model.module.x': t,
        'module.module.y': t,
        'xmodule.z': t,
    })) == ['base_model.conv1_5.0.weight', 'base_model.module.x', 'module.y',
            'xmodule.z']
    cases = [
        ([t], 'Expected a dict with a `state_dict` (a checkpoint saved by '
         'MCG-NJU/TDN main.py), got a list.'),
        ({'state_dict': {'w': t, 'step': 3}, 'epoch': 1},
         "The checkpoint has no `state_dict` of tensors; its keys are "
         "['epoch', 'state_dict']."),
        ({'state_dict': [t]}, "The checkpoint has no `state_dict` of tensors;"
         " its keys are ['state_dict']."),
        ({f'k{i:02d}': 1 for i in range(11, -1, -1)},
         'The checkpoint has no `state_dict` of tensors; its keys are '
         f"{[f'k{i:02d}' for i in range(10)]}."),
        ({'state_dict': {f'module.conv{i}.weight': t for i in range(6)}},
         'Not a TDN release checkpoint: it has no '
         '`module.base_model.conv1_5.0.weight` (the S-TDM stem). Its first '
         f"keys are {[f'conv{i}.weight' for i in range(5)]}."),
    ]
    for checkpoint, message in cases:
        with pytest.raises(ValueError) as info:
            release_state_dict(checkpoint)
        assert str(info.value) == message


class _NotAllowed:
    pass


def test_load_release_checkpoint_allows_what_the_release_holds(tmp_path):
    """Tensors, containers and the scheduler's Counter load; anything else
    (a numpy array, which MMEngine checkpoints may hold, or any object) is
    refused as unsafe, an unreadable file as such."""
    path = str(tmp_path / 'release.pth.tar')
    counter = collections.Counter([30, 45, 45])
    torch.save({'state_dict': {'w': torch.ones(2)},
                'scheduler': {'milestones': counter}}, path)
    loaded = load_release_checkpoint(path)
    assert loaded['scheduler']['milestones'] == counter
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))

    prefix = (
        ' holds objects that a TDN release checkpoint does not hold '
        "(allowed: tensors, plain containers and ['Counter']); it is not a "
        'checkpoint of MCG-NJU/TDN and was refused as unsafe (unpickling '
        'other objects can run arbitrary code; it was not created). '
        'Details: ')
    for name, payload in (('numpy', np.zeros(2)), ('object', _NotAllowed())):
        path = str(tmp_path / f'{name}.pth')
        torch.save({'state_dict': {}, 'payload': payload}, path)
        with pytest.raises(ValueError) as info:
            load_release_checkpoint(path)
        message = str(info.value)
        assert message.startswith(path + prefix), message
        details = message[len(path + prefix):]
        assert details and ('numpy' if name == 'numpy' else '_NotAllowed') \
            in details
        assert info.value.__cause__ is None

    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(ValueError) as info:
        load_release_checkpoint(str(empty))
    assert type(info.value) is ValueError
    assert str(info.value) == (
        f'Cannot load the checkpoint {empty}: it is empty (0 bytes), e.g. an '
        'interrupted save or download. Save or download it again.')
    with pytest.raises(Exception) as direct:
        load_checkpoint_file(str(empty))
    assert str(direct.value) == str(info.value)


def test_convert_release_checkpoint_file(release_state, tmp_path):
    # A small file: each tensor but the classifier's is its first value
    # broadcast to its shape (torch.save keeps that one value).
    # Without BN counters (saved by an old PyTorch): they start at 0.
    num_bns = sum(k.endswith('.num_batches_tracked') for k in release_state)
    release_state = {
        k: v if k.startswith('module.new_fc.') else
        v.flatten()[:1].clone().reshape([1] * v.dim()).expand(v.shape)
        for k, v in release_state.items()
        if not k.endswith('num_batches_tracked')
    }
    path = str(tmp_path / 'best.pth.tar')
    torch.save(
        {
            'state_dict': release_state,
            'arch': 'resnet50',
            'epoch': torch.tensor(60),  # one number: kept as a number
            'prec1': torch.tensor(52.5),
            'best_prec1': 53.0,
            'scheduler': {'milestones': collections.Counter([30, 45])},
        }, path)
    checkpoint, summary = convert_release_checkpoint(
        path, depth=50, label_order='kinetics400', class_map=[1, 2, 0])
    assert summary == dict(
        SUMMARY,
        release_arch='resnet50',
        release_epoch=60,
        release_prec1=52.5,
        release_best_prec1=53.0)
    assert type(summary['release_epoch']) is int
    assert set(checkpoint) == {'state_dict', 'meta'}
    meta = {k: v for k, v in SUMMARY.items() if k != 'dropped_keys'}
    assert checkpoint['meta'] == dict(
        meta,
        source='MCG-NJU/TDN official release checkpoint',
        converter='mmaction_tdx.models.utils.tdn_checkpoint',
        release_arch='resnet50',
        release_epoch=60,
        release_prec1=52.5,
        release_best_prec1=53.0)
    state = checkpoint['state_dict']
    assert len(state) == 724
    counters = [v for k, v in state.items() if k.endswith('batches_tracked')]
    assert len(counters) == num_bns and all(
        v.dtype == torch.long and v.shape == () and v == 0 for v in counters)
    assert torch.equal(state['cls_head.fc_cls.bias'],
                       release_state['module.new_fc.bias'][[1, 2, 0]])
    assert torch.equal(
        state['backbone.conv1.bn.running_mean'],
        release_state['module.base_model.bn1.running_mean'] -
        release_state['module.base_model.conv1.bias'])
    # depth and label_order reach the conversion (a small file: both are
    # checked before any model is built).
    small = str(tmp_path / 'small.pth.tar')
    torch.save({'state_dict': {
        'module.base_model.conv1_5.0.weight': torch.zeros(1),
        'module.new_fc.weight': torch.zeros(3, 1),
        **{f'module.base_model.layer3_bak.{i}.w': torch.zeros(1)
           for i in range(6)}}}, small)
    with pytest.raises(ValueError, match='but depth 101 was requested'):
        convert_release_checkpoint(small, depth=101)
    with pytest.raises(ValueError, match="'sthv2' has 174 classes but the "
                       'checkpoint has 3'):
        convert_release_checkpoint(small, label_order='sthv2')
    torch.save({'state_dict': {
        'module.base_model.conv1_5.0.weight': torch.zeros(1),
        'module.new_fc.weight': torch.zeros(174, 1),
        **{f'module.base_model.layer3_bak.{i}.w': torch.zeros(1)
           for i in range(6)}}}, small)
    with pytest.raises(ValueError, match='^A 174-class checkpoint is '):
        convert_release_checkpoint(small)  # the default order: auto


def test_a_checkpoint_saved_on_another_device_loads_on_the_cpu(tmp_path):
    """The release saved from GPUs; its tensors are mapped to the CPU.
    (``meta`` stands in for ``cuda``, which a CPU-only torch cannot write:
    the location is a string in the pickle of the legacy format.)"""
    buffer = io.BytesIO()
    torch.save({'state_dict': {'w': torch.ones(2)}}, buffer,
               _use_new_zipfile_serialization=False)
    path = tmp_path / 'gpu.pth.tar'
    data = buffer.getvalue()
    assert data.count(b'X\x03\x00\x00\x00cpu') == 1
    path.write_bytes(
        data.replace(b'X\x03\x00\x00\x00cpu', b'X\x04\x00\x00\x00meta'))
    assert torch.load(path, weights_only=True)['state_dict']['w'].is_meta
    loaded = load_release_checkpoint(str(path))
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
