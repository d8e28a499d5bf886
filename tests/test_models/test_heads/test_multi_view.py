# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Multi-view testing written the MMAction2 way gives per-view scores
fused by ``average_clips``.

Each case runs MMAction2 1.2.0's own transforms (sampler, crop,
``FormatShape('NCHW')``) on a random video and feeds the multi-view sample
to a tiny recognizer. The reference is independent of the layout the model
assumes: every view is built by hand (its frame indices from the
sampler's documented formula, its crop window from the crop's offsets),
run alone as a one-view clip, and the views' softmax averaged.
"""
import numpy as np
import torch
from mmaction.registry import MODELS, TRANSFORMS
from mmaction.structures import ActionDataSample
from mmengine.registry import init_default_scope

from mmaction_tdx.datasets.sampling_contract import bind_view_heads

NUM_FRAMES, H, W, K = 24, 48, 64, 5


def recognizer(backbone, head='ViewConsensusTSNHead', **head_kwargs):
    init_default_scope('mmaction')
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='SegmentRecognizer2D',
            backbone=dict(depth=18, pretrained=None, **backbone),
            cls_head=dict(
                type=head,
                num_classes=K,
                in_channels=512,
                average_clips='prob',
                **head_kwargs),
            data_preprocessor=dict(
                type='ActionDataPreprocessor',
                mean=[120.0] * 3,
                std=[60.0] * 3,
                format_shape='NCHW')))
    with torch.no_grad():  # distinct, not tiny, class scores per view
        model.cls_head.fc_cls.weight.normal_(0, 0.3)
    bind_view_heads(model)
    return model.eval()


def through_pipeline(video, sampler, crop):
    """MMAction2's transforms on ``video`` (decoding by indexing)."""
    results = TRANSFORMS.build(sampler)(
        dict(total_frames=NUM_FRAMES, start_index=0, modality='RGB'))
    results['imgs'] = [video[i] for i in results['frame_inds']]
    results['img_shape'] = results['original_shape'] = (H, W)
    for step in (crop, dict(type='FormatShape', input_format='NCHW')):
        results = TRANSFORMS.build(step)(results)
    return torch.from_numpy(np.ascontiguousarray(results['imgs']))


def scores(model, *inputs):
    """``pred_score`` of each sample (one per input)."""
    data = dict(
        inputs=list(inputs),
        data_samples=[ActionDataSample() for _ in inputs])
    with torch.no_grad():
        results = model.test_step(data)
    return torch.stack([r.pred_score for r in results]).squeeze(0)


def by_hand(model, video, views):
    """Mean over views of the one-view softmax; ``views`` lists
    ``(frame indices, y0, x0, size, flip)``. Each view is a sample of its
    own (a batch of one-view samples)."""
    clips = []
    for inds, y0, x0, size, flip in views:
        clip = video[np.asarray(inds)][:, y0:y0 + size, x0:x0 + size]
        if flip:
            clip = clip[:, :, ::-1]
        clips.append(
            torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1,
                                                                 2))))
    return scores(model, *clips).mean(0)  # one view: its softmax


def three_crops(size=H):
    step = (W - size) // 2  # ThreeCrop along the longer side
    return [(0, x, size, False) for x in (0, step, 2 * step)]


def ten_crops(size=40):
    ws, hs = (W - size) // 4, (H - size) // 4
    corners = [(0, 0), (0, 4 * ws), (4 * hs, 0), (4 * hs, 4 * ws),
               (2 * hs, 2 * ws)]
    return [(y, x, size, flip) for y, x in corners for flip in (False, True)]


T = 2


def test_tdrl_twice_sample_ten_crops():
    """TDRL's twice_sample (Table 1 "x 2") x TenCrop: 20 views."""
    model = recognizer(dict(type='ResNetTDRL', num_segments=T),
                       head='TSNTDHead')
    inputs = through_pipeline(
        video_fixture(),
        dict(type='SampleFrames', clip_len=1, num_clips=T,
             twice_sample=True, test_mode=True),
        dict(type='TenCrop', crop_size=40))
    segment = NUM_FRAMES / T
    middles = ((np.arange(T) + 0.5) * segment).astype(int)
    starts = (np.arange(T) * segment).astype(int)
    views = [(inds, *crop) for crop in ten_crops()
             for inds in (middles, starts)]
    expected = by_hand(model, video_fixture(), views)
    torch.testing.assert_close(scores(model, inputs), expected,
                               rtol=1e-4, atol=1e-6)


def test_tdn_segment_views_three_crops():
    """TDN (Table 3 protocol): SegmentSampleFrames(num_views=2) x
    ThreeCrop, 6 views of T x 5 frames."""
    model = recognizer(dict(type='ResNetTDN', num_segments=T))
    inputs = through_pipeline(
        video_fixture(),
        dict(type='SegmentSampleFrames', clip_len=5, num_clips=T,
             num_views=2, test_mode=True),
        dict(type='ThreeCrop', crop_size=H))
    segment = (NUM_FRAMES - 4) / T  # snippet starts cut into T segments
    views = []
    for crop in three_crops():
        for view in range(2):
            starts = ((np.arange(T) + (view + 0.5) / 2) * segment).astype(
                int)
            inds = (starts[:, None] + np.arange(5)).reshape(-1)
            views.append((inds, *crop))
    expected = by_hand(model, video_fixture(), views)
    torch.testing.assert_close(scores(model, inputs), expected,
                               rtol=1e-4, atol=1e-6)


def test_num_clips_multiple_of_segments_default_head():
    """``SampleFrames(num_clips=2T)`` with the TDN base config's head
    (no ``segments_per_view`` written: the backbone's)."""
    model = recognizer(
        dict(type='ResNetTDN', num_segments=T, short_term_tdm=None))
    assert model.cls_head.segments_per_view == T
    inputs = through_pipeline(
        video_fixture(),
        dict(type='SampleFrames', clip_len=1, num_clips=2 * T,
             test_mode=True), dict(type='CenterCrop', crop_size=H))
    inds = ((np.arange(2 * T) + 0.5) * NUM_FRAMES / (2 * T)).astype(int)
    x0 = (W - H) // 2
    expected = by_hand(model, video_fixture(),
                       [(inds[:T], 0, x0, H, False),
                        (inds[T:], 0, x0, H, False)])
    torch.testing.assert_close(scores(model, inputs), expected,
                               rtol=1e-4, atol=1e-6)
    # The plain TSNHead (what the base config had) averages the features of
    # both views: another number, which the sampling check refuses.
    tsn = recognizer(
        dict(type='ResNetTDN', num_segments=T, short_term_tdm=None),
        head='TSNHead')
    assert (scores(tsn, inputs) - expected).abs().max() > 1e-2


_VIDEO = []


def video_fixture():
    if not _VIDEO:
        rng = np.random.default_rng(0)
        _VIDEO.append(
            rng.integers(0, 256, (NUM_FRAMES, H, W, 3), dtype=np.uint8))
    return _VIDEO[0]
