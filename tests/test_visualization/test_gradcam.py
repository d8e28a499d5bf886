# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Grad-CAM of TDN (5 frames per segment) and of its temporal-conv
baseline; TDN paper Sec. 4.4, Figs. 4-7."""
import os.path as osp

import pytest
import torch
from mmengine import Config
from vis_helpers import MODELS, assert_nontrivial_png, run_tool

from mmaction_tdx.apis import init_video_recognizer
from mmaction_tdx.visualization import SegmentGradCAM

SEGMENTS, SIZE, CLASSES = 2, 64, 5  # L-TDM pools layer4: >= 2x2


@pytest.fixture(scope='module')
def tdn():
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(MODELS, 'tdn_r50.py'))
    return init_video_recognizer(cfg, None, 'cpu', {
        'model.backbone.depth': 18,
        'model.backbone.num_segments': SEGMENTS,
        'model.cls_head.in_channels': 512,
        'model.cls_head.num_classes': CLASSES,
    })


def _data(frames_per_segment=5):
    from mmaction.structures import ActionDataSample
    torch.manual_seed(1)
    frames = torch.randint(0, 256, (SEGMENTS * frames_per_segment, 3, SIZE,
                                    SIZE), dtype=torch.uint8)
    sample = ActionDataSample().set_gt_label(3)
    return dict(inputs=[frames], data_samples=[sample])


def test_one_map_per_segment_on_its_centre_frame(tdn):
    data = _data()
    cam = SegmentGradCAM(tdn, 'backbone.layer4.-1')
    try:
        maps, scores = cam.maps(data)
        blended, _ = cam(data, alpha=0.0)
    finally:
        cam.remove()
    assert maps.shape == (1, SEGMENTS, SIZE, SIZE)
    assert maps.min() >= 0 and maps.max() == pytest.approx(1, abs=1e-6)
    assert scores.shape == (1, CLASSES)
    # alpha 0: the frames themselves, the centre one (2, 7) of each segment
    centres = data['inputs'][0][[2, 7]].permute(0, 2, 3, 1).float() / 255
    assert blended.shape == (1, SEGMENTS, SIZE, SIZE, 3)
    assert torch.allclose(blended[0], centres)
    assert tdn.cls_head.average_clips == 'prob'  # restored


def test_maps_follow_the_explained_class(tdn):
    data = _data()
    cam = SegmentGradCAM(tdn, 'backbone/layer4')
    try:
        per_class = [cam.maps(data, target_class=c)[0] for c in (0, 1)]
        by_label, _ = cam._calculate_localization_map(data, use_labels=True)
        label_3 = cam.maps(data, target_class=3)[0]
    finally:
        cam.remove()
    assert not torch.allclose(per_class[0], per_class[1])
    assert torch.allclose(by_label, label_3)


def test_each_map_follows_its_segment():
    """Without temporal modules the segments are processed independently:
    swapping the segments' frames swaps their maps (and nothing else)."""
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(MODELS, 'tdn_r50.py'))
    model = init_video_recognizer(cfg, None, 'cpu', {
        'model.backbone.depth': 18,
        'model.backbone.num_segments': SEGMENTS,
        'model.backbone.short_term_tdm': None,
        'model.backbone.long_term_tdm': None,
        'model.backbone.temporal_module': None,
        'model.backbone.frames_per_segment': 5,
        'model.cls_head.in_channels': 512,
        'model.cls_head.num_classes': CLASSES,
    })
    data = _data()
    frames = data['inputs'][0]
    swapped = dict(data, inputs=[torch.cat([frames[5:], frames[:5]])])
    cam = SegmentGradCAM(model, 'backbone.layer3')
    try:
        maps, _ = cam.maps(data, target_class=1)
        maps_swapped, _ = cam.maps(swapped, target_class=1)
    finally:
        cam.remove()
    assert not torch.allclose(maps[0, 0], maps[0, 1], atol=1e-3)
    assert torch.allclose(maps_swapped[0], maps[0].flip(0), atol=1e-5)


def test_baseline_with_one_frame_per_segment():
    """TDN without TDMs (the paper's temporal-conv baseline): 1 frame per
    segment; every frame gets its map."""
    cfg = Config.fromfile(osp.join(MODELS, 'tdn_r50.py'))
    model = init_video_recognizer(cfg, None, 'cpu', {
        'model.backbone.depth': 18,
        'model.backbone.num_segments': SEGMENTS,
        'model.backbone.short_term_tdm': None,
        'model.backbone.long_term_tdm': None,
        'model.cls_head.in_channels': 512,
    })
    data = _data(frames_per_segment=1)
    cam = SegmentGradCAM(model, 'backbone.layer1')  # "Res2", Fig. 5
    blended, _ = cam(data, alpha=0.0)
    cam.remove()
    assert torch.allclose(
        blended[0], data['inputs'][0].permute(0, 2, 3, 1).float() / 255)


def _small_config(path, **backbone):
    """TDN-R18, 4 segments, 112x112 crops: a fast model for the tool."""
    from mmaction_tdx.apis import default_video_pipeline
    per_segment = 1 if backbone else 5
    pipeline = default_video_pipeline(4, per_segment, 128, 112)
    path.write_text(
        f"_base_ = [{osp.join(MODELS, 'tdn_r50.py')!r}]\n"
        f'model = dict(backbone=dict(depth=18, num_segments=4, '
        f'**{backbone!r}), cls_head=dict(in_channels=512))\n'
        f'test_pipeline = {pipeline!r}\n')
    return path


def test_vis_cam_compares_baseline_and_tdn(shared_dir, tmp_path, capsys):
    tdn = _small_config(tmp_path / 'tdn.py')
    baseline = _small_config(
        tmp_path / 'baseline.py', short_term_tdm=None, long_term_tdm=None)
    video = osp.join(shared_dir, 'data', 'videos',
                     'kinetics_arm_wrestling.mp4')
    labels = osp.join(shared_dir, 'data', 'label_maps', 'kinetics400.txt')
    out = tmp_path / 'cam.png'
    assert run_tool('tools/visualizations/vis_cam.py', tdn, 'none', video,
                    '--compare', 'baseline', baseline, 'none',
                    '--label-map', labels, '--out-filename', out) == 0
    assert 'for baseline, TDN on 4 segment(s)' in capsys.readouterr().out
    assert_nontrivial_png(out)


def test_vis_cam_centre_segment_and_errors(shared_dir, tmp_path, capsys):
    tdn = _small_config(tmp_path / 'tdn.py')
    video = osp.join(shared_dir, 'data', 'videos', 'test.avi')
    centre = tmp_path / 'centre.png'
    assert run_tool('tools/visualizations/vis_cam.py', tdn, 'none', video,
                    '--segments', '2', '--target-class', '6',
                    '--out-filename', centre) == 0
    assert_nontrivial_png(centre, min_size=(200, 150))
    assert run_tool('tools/visualizations/vis_cam.py', tdn, 'none', video,
                    '--segments', '4', '--out-filename',
                    tmp_path / 'no.png') == 1
    assert 'out of range 0-3' in capsys.readouterr().err
    assert not (tmp_path / 'no.png').exists()


def test_vis_cam_quickstart_tsn_beside_tdn(tmp_path, capsys):
    """Each model samples as its own config says: TSN's backbone has no
    segment count (4 segments of 1 frame in its config), TDN's reads 4 of
    5 frames; both give one map per segment of a synthetic clip."""
    from mmaction_tdx.datasets.synthetic_motion import (
        SyntheticMotionSpec,
        render_clip,
        write_mp4,
    )
    spec = SyntheticMotionSpec(root=str(tmp_path), frames=24, size=64)
    video = str(tmp_path / 'moving_right.mp4')
    write_mp4(video, render_clip(spec, 'val', 0, 0), spec.fps)
    quickstart = osp.join(osp.dirname(MODELS), '..', 'quickstart')
    name = '_r18_1xb16-{}-12e_synthetic-motion-rgb.py'
    tsn = osp.join(quickstart, 'tsn' + name.format('1x1x4'))
    tdn = osp.join(quickstart, 'tdn' + name.format('5x1x4'))
    out = tmp_path / 'cam.png'
    assert run_tool('tools/visualizations/vis_cam.py', tdn, 'none', video,
                    '--compare', 'TSN', tsn, 'none', '--target-layer-name',
                    'backbone/layer3', '--out-filename', out) == 0
    assert 'for TSN, TDN on 4 segment(s)' in capsys.readouterr().out
    assert_nontrivial_png(out, min_size=(150, 200))
