# Copyright (c) mmaction_tdx contributors. All rights reserved.
import os
import os.path as osp

import numpy as np
import pytest

from mmaction_tdx.datasets.synthetic_motion import (
    CLASSES,
    MOTION_PAIRS,
    SyntheticMotionSpec,
    generate,
    render_clip,
    reversal_partner,
)


def _spec(root, **kwargs):
    options = dict(num_train_per_class=2, num_val_per_class=1, frames=12,
                   size=64)
    options.update(kwargs)
    return SyntheticMotionSpec(root=str(root), **options)


def test_classes_are_reversal_pairs():
    assert len(CLASSES) == 2 * len(MOTION_PAIRS) == 10
    for forward, backward in MOTION_PAIRS:
        assert reversal_partner(CLASSES.index(forward)) == CLASSES.index(
            backward)


@pytest.mark.parametrize('pair', range(len(MOTION_PAIRS)))
def test_reversed_class_has_the_same_frames_in_reverse(tmp_path, pair):
    """The order of frames is the only label information within a pair."""
    spec = _spec(tmp_path)
    forward = render_clip(spec, 'train', 3, 2 * pair)
    backward = render_clip(spec, 'train', 3, 2 * pair + 1)
    np.testing.assert_array_equal(forward[::-1], backward)
    # ... and the motion is real: frames differ over time.
    assert np.abs(forward[0].astype(int) - forward[-1].astype(int)).mean() > 1


def test_single_frames_carry_no_direction_statistics(tmp_path):
    """Across many clips, mean frame statistics of both directions match."""
    spec = _spec(tmp_path)
    for pair in range(len(MOTION_PAIRS)):
        firsts = [render_clip(spec, 'train', i, 2 * pair)[0].mean()
                  for i in range(20)]
        lasts = [render_clip(spec, 'train', i, 2 * pair + 1)[-1].mean()
                 for i in range(20)]
        # identical by construction: first frame of forward == last of
        # backward for the same scene
        np.testing.assert_allclose(firsts, lasts)


def _object_centroids(clip):
    """Per-frame centroid ``(x, y)`` of the bright pixels: the object is
    bright (every channel > 140, one at 255) on a dark scene (< 110)."""
    moving = clip.max(axis=-1) > 125
    ys, xs = np.mgrid[:clip.shape[1], :clip.shape[2]]
    return np.array([(xs[m].mean(), ys[m].mean()) for m in moving])


@pytest.mark.parametrize('label,axis,sign', [(0, 0, 1), (1, 0, -1),
                                             (2, 1, 1), (3, 1, -1)])
def test_translations_cross_most_of_the_frame(tmp_path, label, axis, sign):
    """Large, high-contrast motion: 4 segments see clearly different
    states (the quick start trains from scratch in minutes)."""
    spec = _spec(tmp_path, frames=24)
    for index in range(5):
        centres = _object_centroids(render_clip(spec, 'train', index, label))
        travel = (centres[-1] - centres[0])[axis] * sign
        assert travel > 0.4 * spec.size
        assert abs((centres[-1] - centres[0])[1 - axis]) < 2


def test_splits_have_their_own_scenes(tmp_path):
    """'tune' (for designing the recipe), 'train' and 'val' never share a
    scene."""
    spec = _spec(tmp_path)
    clips = [render_clip(spec, split, 0, 0)
             for split in ('train', 'val', 'tune')]
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(clips[a].astype(int) - clips[b]).mean() > 5


def test_generate_is_deterministic_and_idempotent(tmp_path):
    first = generate(_spec(tmp_path / 'a'), show_progress=False)
    second = generate(_spec(tmp_path / 'b'), show_progress=False)
    with open(first['train_list']) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2 * len(CLASSES)
    rel, label = lines[0].split()
    assert int(label) == 0 and rel.endswith('.mp4')
    with open(osp.join(tmp_path / 'a' / 'videos', rel), 'rb') as f_a, open(
            osp.join(tmp_path / 'b' / 'videos', rel), 'rb') as f_b:
        assert f_a.read() == f_b.read()
    with open(second['label_map']) as f:
        assert f.read().splitlines() == list(CLASSES)
    stamp = os.stat(first['train_list']).st_mtime_ns
    generate(_spec(tmp_path / 'a'), show_progress=False)
    assert os.stat(first['train_list']).st_mtime_ns == stamp


def test_clips_decode_with_decord(tmp_path):
    import decord
    outputs = generate(_spec(tmp_path), show_progress=False)
    with open(outputs['val_list']) as f:
        rel = f.readline().split()[0]
    reader = decord.VideoReader(str(tmp_path / 'videos' / rel))
    assert len(reader) == 12
    assert reader[0].shape == (64, 64, 3)


def test_undecodable_size_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match='--size'):
        generate(_spec(tmp_path, size=48), show_progress=False)
