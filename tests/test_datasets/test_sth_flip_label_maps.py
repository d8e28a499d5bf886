# Copyright (c) mmaction_tdx contributors. All rights reserved.
import os.path as osp

import numpy as np
import pytest
from mmaction.datasets.transforms import Flip

from mmaction_tdx.datasets import (
    STHV1_FLIP_LABEL_MAP,
    STHV2_FLIP_LABEL_MAP,
    flip_label_map,
)
from mmaction_tdx.datasets.sth_flip_label_maps import mirrored_class_name

LABEL_MAPS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), '..',
    'shared', 'data', 'label_maps')


def _names(version):
    path = osp.join(LABEL_MAPS, f'sth{version}_mmaction_order.txt')
    if not osp.exists(path):
        pytest.skip('shared label maps not available')
    with open(path) as f:
        return [line.rstrip('\n') for line in f]


@pytest.mark.parametrize('mapping', [STHV1_FLIP_LABEL_MAP,
                                     STHV2_FLIP_LABEL_MAP])
def test_flipping_twice_is_the_identity(mapping):
    assert len(mapping) == 6
    for label, flipped in mapping.items():
        assert flipped != label
        assert mapping[flipped] == label


@pytest.mark.parametrize('version,mapping', [('v1', STHV1_FLIP_LABEL_MAP),
                                             ('v2', STHV2_FLIP_LABEL_MAP)])
def test_constants_regenerate_from_the_label_maps(version, mapping):
    names = _names(version)
    assert flip_label_map(names) == mapping
    pairs = {names[a]: names[b] for a, b in mapping.items()}
    assert pairs['Pushing something from left to right'] == \
        'Pushing something from right to left'
    assert pairs['Pulling something from right to left'] == \
        'Pulling something from left to right'
    assert pairs['Turning the camera left while filming something'] == \
        'Turning the camera right while filming something'
    # "right" inside other words or idioms is not a direction.
    for name in ('Putting something upright on the table',
                 'Plugging something into something but pulling it right '
                 'out as you remove your hand'):
        assert name not in pairs


def test_v2_map_equals_the_release():
    # ops/models.py: target_transforms = {86: 87, 87: 86, 93: 94, 94: 93,
    # 166: 167, 167: 166} in the (alphabetical) release order.
    assert STHV2_FLIP_LABEL_MAP == {
        86: 87, 87: 86, 93: 94, 94: 93, 166: 167, 167: 166}


def test_mirrored_class_name():
    assert mirrored_class_name('from left to right') == 'from right to left'
    assert mirrored_class_name('upright') == 'upright'


def test_mmaction_flip_swaps_the_label():
    flip = Flip(flip_ratio=1.0, flip_label_map=STHV1_FLIP_LABEL_MAP)
    imgs = [np.zeros((4, 6, 3), dtype=np.uint8)]
    results = flip(dict(imgs=imgs, label=30, modality='RGB',
                        img_shape=(4, 6)))
    assert results['label'] == 41
    results = flip(dict(imgs=imgs, label=5, modality='RGB',
                        img_shape=(4, 6)))
    assert results['label'] == 5
