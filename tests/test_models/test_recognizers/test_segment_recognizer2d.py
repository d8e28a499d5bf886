# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The two backbone contracts of SegmentRecognizer2D, on toy backbones."""
import pytest
import torch
import torch.nn as nn
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.model import BaseModule
from mmengine.registry import init_default_scope

from mmaction_tdx.models.utils.aux_outputs import AuxOutputsMixin

init_default_scope('mmaction')


@MODELS.register_module(force=True)
class ToyMultiFrameBackbone(BaseModule):
    """Takes ``(N*T, L*3, H, W)``: averages each segment's ``L`` frames,
    stacked on channels, and records what it received."""

    frames_per_segment = 3

    def __init__(self, num_segments=2):
        super().__init__()
        self.num_segments = num_segments
        self.conv = nn.Conv2d(3, 4, 1)
        self.received = None

    def forward(self, x):
        self.received = x
        x = x.view(x.shape[0], self.frames_per_segment, 3,
                   *x.shape[2:]).mean(1)
        return self.conv(x)


@MODELS.register_module(force=True)
class ToyAuxBackbone(AuxOutputsMixin, ToyMultiFrameBackbone):
    frames_per_segment = 1
    supported_aux_outputs = ('toy_aux', )
    aux_calls = 0

    def forward_with_aux(self, x):
        self.aux_calls += 1
        feats = self(x)
        return feats, {'toy_aux': feats.mean()}


@MODELS.register_module(force=True)
class ToyTwoStageBackbone(ToyAuxBackbone):
    """Plain features are a tuple (two ``out_indices``), as for a neck."""

    def forward(self, x):
        feats = super().forward(x)
        return feats, feats * 2

    def forward_with_aux(self, x):
        feats = self(x)
        return feats, {'toy_aux': feats[0].mean()}


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


def test_frames_of_a_segment_are_stacked_on_channels():
    """(N, V*T*L, C, H, W) reaches the backbone as (N*V*T, L*C, H, W):
    segment s of sample n holds frames s*L .. s*L + L - 1."""
    model = build(dict(type='ToyMultiFrameBackbone'))
    n, v, t, per = 2, 2, 2, 3
    inputs = torch.randn(n, v * t * per, 3, 8, 8)
    _, kwargs = model.extract_feat(inputs, test_mode=True)
    received = model.backbone.received
    assert received.shape == (n * v * t, per * 3, 8, 8)
    for sample in range(n):
        for seg in range(v * t):
            want = inputs[sample, seg * per:(seg + 1) * per].flatten(0, 1)
            assert torch.equal(received[sample * v * t + seg], want)
    assert kwargs['num_segs'] == v * t


def test_every_stage_is_upstreams():
    """Neck-less fcn test and the head stage come from Recognizer2D: the
    same numbers as upstream on the stacked input."""
    from mmaction.models.recognizers import Recognizer2D
    ours = build(dict(type='ToyMultiFrameBackbone')).eval()  # no dropout
    inputs = torch.randn(2, 2 * 3, 3, 8, 8)
    upstream = Recognizer2D.extract_feat
    stacked = inputs.reshape(2, 2, 9, 8, 8)
    for stage in ('backbone', 'neck', 'head'):
        got, got_kwargs = ours.extract_feat(inputs, stage=stage)
        want, want_kwargs = upstream(ours, stacked, stage=stage)
        assert torch.equal(got, want) and got_kwargs == want_kwargs
    ours.test_cfg = dict(fcn_test=True)
    got, _ = ours.extract_feat(inputs, test_mode=True)
    assert got.shape == (2, 4, 2, 8, 8)  # (N, C, T, H, W) as upstream


def test_training_path_with_aux_outputs_is_upstreams():
    """In training the backbone is called through ``forward_with_aux``:
    upstream's features and keyword arguments, plus the aux outputs."""
    from mmaction.models.recognizers import Recognizer2D
    model = build(dict(type='ToyAuxBackbone'), head_type='ToyAuxHead')
    inputs = torch.randn(2, 2, 3, 8, 8)
    for stage in ('backbone', 'neck'):
        got, got_kwargs = model.train().extract_feat(inputs, stage=stage)
        want, want_kwargs = Recognizer2D.extract_feat(
            model, inputs, stage=stage)
        assert torch.equal(got, want)
        assert torch.equal(got_kwargs.pop('toy_aux'), want.mean())
        assert got_kwargs == want_kwargs


def test_tuple_features_are_not_mistaken_for_aux_outputs():
    model = build(dict(type='ToyTwoStageBackbone'), head_type='ToyAuxHead')
    inputs = torch.randn(2, 2, 3, 8, 8)
    model.eval()
    feats, kwargs = model.extract_feat(inputs, stage='backbone')
    assert isinstance(feats, tuple) and len(feats) == 2
    assert 'toy_aux' not in kwargs
    model.train()
    feats, kwargs = model.extract_feat(inputs, stage='backbone')
    assert isinstance(feats, tuple) and torch.equal(feats[1], 2 * feats[0])
    assert torch.equal(kwargs['toy_aux'], feats[0].mean())


def test_aux_outputs_only_in_training():
    model = build(dict(type='ToyAuxBackbone'), head_type='ToyAuxHead')
    assert model.backbone.aux_outputs == ('toy_aux', )
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
    # The loss path alone asked for them; nothing is kept on the modules.
    assert model.backbone.aux_calls == 1
    assert not model.backbone._forward_hooks
    kept = [
        name for name, value in vars(model).items()
        if name not in ('_parameters', '_buffers') and (
            torch.is_tensor(value) or isinstance(value, dict) and any(
                torch.is_tensor(v) for v in value.values()))
    ]
    assert not kept


def test_unknown_aux_output_is_explained():
    with pytest.raises(ValueError, match=r"cannot provide \['other'\]"):
        MODELS.build(dict(type='ToyAuxBackbone')).request_aux_outputs(
            ('other', ))


def test_head_needing_aux_rejects_plain_backbone():
    with pytest.raises(TypeError, match='cannot provide them'):
        build(dict(type='ToyMultiFrameBackbone'), head_type='ToyAuxHead')
