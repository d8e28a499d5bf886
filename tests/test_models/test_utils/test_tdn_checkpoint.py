# Copyright (c) mmaction_tdx contributors. All rights reserved.
import os
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn

from mmaction_tdx.models.utils.tdn_checkpoint import (
    fold_conv_bias,
    release_key,
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
