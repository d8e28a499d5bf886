# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The two backbone contracts of SegmentRecognizer2D, on toy backbones."""
import pytest
import torch
import torch.nn as nn
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.model import BaseModule
from mmengine.registry import init_default_scope

init_default_scope('mmaction')


@MODELS.register_module(force=True)
class ToyMultiFrameBackbone(BaseModule):
    """Averages each segment's ``frames_per_segment`` frames."""

    frames_per_segment = 3

    def __init__(self, num_segments=2):
        super().__init__()
        self.num_segments = num_segments
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        frames = x.shape[0]
        x = x.view(frames // self.frames_per_segment,
                   self.frames_per_segment, *x.shape[1:]).mean(1)
        return self.conv(x)


@MODELS.register_module(force=True)
class ToyAuxBackbone(ToyMultiFrameBackbone):
    frames_per_segment = 1

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.requested = ()

    def request_aux_outputs(self, names):
        self.requested = tuple(names)

    def forward(self, x):
        feats = super().forward(x)
        if self.training and self.requested:
            return feats, {'toy_aux': feats.mean()}
        return feats


@MODELS.register_module(force=True)
class ToyAuxHead(MODELS.get('TSNHead')):
    backbone_aux_outputs = ('toy_aux', )

    def loss(self, feats, data_samples, toy_aux=None, **kwargs):
        losses = super().loss(feats, data_samples, **kwargs)
        losses['loss_toy'] = toy_aux.abs()
        return losses


def build(backbone, head_type='TSNHead'):
    return MODELS.build(
        dict(
            type='SegmentRecognizer2D',
            backbone=backbone,
            cls_head=dict(
                type=head_type,
                num_classes=3,
                in_channels=4,
                average_clips='prob'),
            data_preprocessor=dict(type='ActionDataPreprocessor',
                                   format_shape='NCHW')))


def samples(n):
    return [ActionDataSample().set_gt_label(i % 3) for i in range(n)]


def test_consensus_over_segments_not_frames():
    model = build(dict(type='ToyMultiFrameBackbone'))
    inputs = torch.randn(2, 2 * 3, 3, 8, 8)  # N=2, T=2, L=3
    feats, kwargs = model.extract_feat(inputs)
    assert feats.shape[0] == 2 * 2
    assert kwargs['num_segs'] == 2
    scores, _ = model.extract_feat(inputs, stage='head')
    assert scores.shape == (2, 3)
    losses = model(inputs, samples(2), mode='loss')
    assert set(losses) >= {'loss_cls'}


def test_views_are_whole_clips():
    model = build(dict(type='ToyMultiFrameBackbone'))
    with pytest.raises(ValueError, match='not a multiple of 3'):
        model.extract_feat(torch.randn(1, 7, 3, 8, 8))


def test_plain_backbone_behaves_like_recognizer2d():
    ours = build(dict(type='ResNet', depth=18, pretrained=None))
    inputs = torch.randn(1, 2, 3, 32, 32)
    _, kwargs = ours.extract_feat(inputs)
    assert kwargs['num_segs'] == 2


def test_aux_outputs_only_in_training():
    model = build(dict(type='ToyAuxBackbone'), head_type='ToyAuxHead')
    assert model.backbone.requested == ('toy_aux', )
    inputs = torch.randn(2, 2, 3, 8, 8)
    model.train()
    losses = model(inputs, samples(2), mode='loss')
    assert {'loss_cls', 'loss_toy'} <= set(losses)
    model.eval()
    with torch.no_grad():
        predictions = model(inputs, samples(2), mode='predict')
        feats, kwargs = model.extract_feat(inputs, test_mode=True)
    assert len(predictions) == 2
    assert torch.is_tensor(feats) and 'toy_aux' not in kwargs


def test_head_needing_aux_rejects_plain_backbone():
    with pytest.raises(TypeError, match='cannot provide them'):
        build(dict(type='ToyMultiFrameBackbone'), head_type='ToyAuxHead')
