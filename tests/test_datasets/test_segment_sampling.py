# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""SegmentSampleFrames: the TDN release's test sampling and test views."""
import numpy as np
import pytest
from mmaction.datasets.transforms import SampleFrames

from mmaction_tdx.datasets.transforms import SegmentSampleFrames


def release_test_starts(num_frames, num_segments, new_length=5):
    """``TSNDataSet._get_test_indices`` of MCG-NJU/TDN (0-based)."""
    if num_frames > num_segments + new_length - 1:
        tick = (num_frames - new_length + 1) / float(num_segments)
        return np.array([int(tick / 2.0 + tick * x)
                         for x in range(num_segments)])
    return np.zeros(num_segments, dtype=int)


def sample(num_frames, start_index=0, **kwargs):
    results = SegmentSampleFrames(**kwargs)(
        dict(total_frames=num_frames, start_index=start_index))
    return results['frame_inds'], results


@pytest.mark.parametrize('num_frames', [12, 13, 37, 40, 121, 300])
@pytest.mark.parametrize('num_segments', [8, 16])
def test_one_view_is_the_release_test_sampling(num_frames, num_segments):
    inds, results = sample(
        num_frames, clip_len=5, num_clips=num_segments, test_mode=True)
    snippets = inds.reshape(num_segments, 5)
    starts = release_test_starts(num_frames, num_segments)
    # Each snippet is 5 consecutive frames from the release's start, the
    # end repeated where the video is too short (release: p stays < n).
    expected = np.minimum(starts[:, None] + np.arange(5), num_frames - 1)
    np.testing.assert_array_equal(snippets, expected)
    assert results['num_clips'] == num_segments


def test_start_index_shifts_frames():
    zero_based, _ = sample(40, clip_len=5, num_clips=8, test_mode=True)
    one_based, _ = sample(
        40, start_index=1, clip_len=5, num_clips=8, test_mode=True)
    np.testing.assert_array_equal(one_based, zero_based + 1)


def test_views_are_view_major_and_spread_over_segments():
    num_frames, segments, views = 300, 8, 10
    inds, results = sample(
        num_frames,
        clip_len=5,
        num_clips=segments,
        num_views=views,
        test_mode=True)
    assert results['num_clips'] == segments * views
    starts = inds.reshape(views, segments, 5)[..., 0]
    segment = (num_frames - 4) / segments
    for view in range(views):
        # View v samples every segment once, at fraction (v + .5) / V.
        np.testing.assert_array_equal(
            starts[view],
            ((np.arange(segments) + (view + 0.5) / views) * segment).astype(
                int))
    # Within a segment the views' snippets are distinct and ordered.
    assert (np.diff(starts, axis=0) > 0).all()
    assert (starts >= 0).all() and (starts + 4 < num_frames).all()
    # The middle view of an odd count is the one-view sampling.
    middle, _ = sample(
        num_frames, clip_len=5, num_clips=segments, num_views=3,
        test_mode=True)
    single, _ = sample(num_frames, clip_len=5, num_clips=segments,
                       test_mode=True)
    np.testing.assert_array_equal(
        middle.reshape(3, -1)[1], single)


def test_train_mode_is_sample_frames():
    kwargs = dict(clip_len=5, frame_interval=1, num_clips=8)
    np.random.seed(3)
    ours, _ = sample(97, **kwargs)
    np.random.seed(3)
    stock = SampleFrames(out_of_bound_opt='repeat_last', **kwargs)(
        dict(total_frames=97, start_index=0))['frame_inds']
    np.testing.assert_array_equal(ours, stock)


def test_bad_arguments():
    with pytest.raises(ValueError, match='test_mode'):
        SegmentSampleFrames(clip_len=5, num_clips=8, num_views=2)
    with pytest.raises(ValueError, match='num_views'):
        SegmentSampleFrames(
            clip_len=5, num_clips=8, num_views=0, test_mode=True)
    with pytest.raises(ValueError, match='twice_sample'):
        SegmentSampleFrames(
            clip_len=5, num_clips=8, twice_sample=True, test_mode=True)
