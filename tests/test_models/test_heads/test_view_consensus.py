# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""ViewConsensusTSNHead against the release's test protocol written out on
raw tensors: per view, the mean over its T segments of the pooled features,
the classifier, a softmax; then the mean over the views."""
import pytest
import torch
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample

import mmaction_tdx  # noqa: F401

N, V, T, C, K = 3, 2, 4, 16, 5


def _head(**kwargs):
    head = MODELS.build(
        dict(
            type='ViewConsensusTSNHead',
            num_classes=K,
            in_channels=C,
            segments_per_view=T,
            dropout_ratio=0.5,
            **kwargs))
    torch.manual_seed(0)
    with torch.no_grad():
        head.fc_cls.weight.normal_(0, 1)
        head.fc_cls.bias.normal_(0, 1)
    return head.eval()


def _view_logits(feats, weight, bias):
    """(N*V*T, C, H, W) -> (N, V, K): the release scores each view."""
    pooled = feats.mean(dim=(2, 3)).view(N, V, T, C)
    return pooled.mean(dim=2) @ weight.T + bias


def _samples():
    return [ActionDataSample().set_gt_label(0) for _ in range(N)]


@pytest.fixture
def feats():
    torch.manual_seed(1)
    # Distinct views, so that averaging features before the classifier and
    # averaging per-view probabilities differ.
    return torch.randn(N * V * T, C, 3, 3) * 3


def test_prob_consensus_is_mean_of_per_view_softmax(feats):
    head = _head(average_clips='prob')
    logits = _view_logits(feats, head.fc_cls.weight.detach(),
                          head.fc_cls.bias.detach())
    expected = torch.softmax(logits, dim=-1).mean(dim=1)
    with torch.no_grad():
        results = head.predict(feats, _samples(), num_segs=V * T)
    ours = torch.stack([r.pred_score for r in results])
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)

    # MMAction2's TSNHead on the same input averages all V*T features first:
    # a different number (the reason for this head).
    tsn = MODELS.build(
        dict(type='TSNHead', num_classes=K, in_channels=C,
             average_clips='prob')).eval()
    tsn.load_state_dict(head.state_dict())
    with torch.no_grad():
        tsn_scores = torch.stack([
            r.pred_score
            for r in tsn.predict(feats, _samples(), num_segs=V * T)
        ])
    assert (tsn_scores - expected).abs().max() > 1e-3


def test_relu_score_is_the_release_ensemble_term(feats):
    head = _head(average_clips='relu_score')
    logits = _view_logits(feats, head.fc_cls.weight.detach(),
                          head.fc_cls.bias.detach())
    expected = logits.clamp(min=0).mean(dim=1)
    with torch.no_grad():
        results = head.predict(feats, _samples(), num_segs=V * T)
    ours = torch.stack([r.pred_score for r in results])
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_single_view_equals_tsn_head(feats):
    head = _head()
    single = feats[:N * T]
    expected = single.mean(dim=(2, 3)).view(N, T, C).mean(1) @ \
        head.fc_cls.weight.detach().T + head.fc_cls.bias.detach()
    with torch.no_grad():
        torch.testing.assert_close(
            head(single, num_segs=T), expected, rtol=1e-5, atol=1e-5)


def test_loss_trains_on_one_view(feats):
    head = _head().train()
    losses = head.loss(feats[:N * T], _samples(), num_segs=T)
    assert torch.isfinite(losses['loss_cls'])
    with pytest.raises(ValueError, match='segments_per_view'):
        head.loss(feats, _samples(), num_segs=V * T)


def test_errors_name_the_fix(feats):
    head = _head()
    with pytest.raises(ValueError, match='backbone.num_segments'):
        head(feats, num_segs=T + 1)
    with pytest.raises(ValueError, match="'prob'"):
        _head(average_clips='max')


def test_segments_per_view_comes_from_the_backbone():
    """Unset, it is the backbone's ``num_segments``; set, it must agree."""
    backbone = type('Backbone', (), dict(num_segments=T))()
    head = MODELS.build(
        dict(type='ViewConsensusTSNHead', num_classes=K, in_channels=C))
    assert head.segments_per_view is None
    head.bind_backbone(backbone)
    assert head.segments_per_view == T
    wrong = _head()
    wrong.segments_per_view = T + 1
    with pytest.raises(ValueError, match=f'segments_per_view` to {T}'):
        wrong.bind_backbone(backbone)


# The tests below kill mutmut survivors (docs/dev/testing.md names each).
def _plain_head(**kwargs):
    return MODELS.build(
        dict(type='ViewConsensusTSNHead', num_classes=K, in_channels=C,
             **kwargs))


def test_score_consensus_is_mean_of_view_logits(feats):
    head = _head(average_clips='score')
    scores = head.predict_by_feat(head(feats, num_segs=V * T),
                                  [ActionDataSample() for _ in range(N)])
    view_logits = _view_logits(feats, head.fc_cls.weight, head.fc_cls.bias)
    got = torch.stack([s.pred_score for s in scores])
    assert torch.allclose(got, view_logits.mean(dim=1), atol=1e-5)


def test_average_clip_defaults_to_one_view_per_video():
    for mode in ('score', 'relu_score'):
        head = _head(average_clips=mode)
        scores = torch.randn(N, K)
        expected = scores if mode == 'score' else scores.clamp(min=0)
        assert torch.allclose(head.average_clip(scores), expected)


def test_one_segment_per_view_and_tsn_head_arguments(feats):
    """``segments_per_view=1`` is valid (>= 1); TSNHead's own arguments
    reach it (``**kwargs`` passed on)."""
    head = _plain_head(segments_per_view=1, init_std=0.123,
                       dropout_ratio=0.5, spatial_type=None).train()
    assert head.segments_per_view == 1 and head.init_std == 0.123
    assert head.dropout_ratio == 0.5 and head.avg_pool is None
    pooled = feats.mean(dim=(2, 3), keepdim=True)
    assert head(pooled[:2 * N], num_segs=2).shape == (2 * N, K)


@pytest.mark.parametrize('value', [0, -1, 2.5, 4.0])
def test_segments_per_view_must_be_a_positive_int(value):
    with pytest.raises(ValueError) as info:
        _plain_head(segments_per_view=value)
    assert str(info.value) == (
        "segments_per_view must be the backbone's num_segments (>= 1), "
        f'got {value}.')


def test_backbone_without_num_segments_binds_nothing():
    head = _plain_head()
    head.bind_backbone(object())
    assert head.segments_per_view is None


def test_error_messages_name_the_fix_verbatim(feats):
    """Each message names the problem and the fix word for word."""
    backbone = type('MyBackbone', (), dict(num_segments=T))()
    head = _head()
    head.segments_per_view = T + 1
    cases = [
        (lambda: _head(average_clips='max'),
         "average_clips='max' is not supported; use 'prob' (the TDN "
         "release's test protocol), 'relu_score' (members of the release's "
         "8+16 logit-sum ensembles), 'score' or None."),
        (lambda: head.bind_backbone(backbone),
         f'ViewConsensusTSNHead has segments_per_view={T + 1} but the '
         f'backbone MyBackbone reads num_segments={T} per view. Set '
         f'`model.cls_head.segments_per_view` to {T} (or leave it out: it '
         'is then taken from the backbone).'),
        (lambda: _head()(feats, num_segs=T + 1),
         f'The head got {T + 1} segments per video, not a whole number of '
         f'views of segments_per_view={T}. Set '
         '`model.cls_head.segments_per_view` to '
         '`model.backbone.num_segments`.'),
        (lambda: _head().train().loss(feats, _samples(), num_segs=V * T),
         f'ViewConsensusTSNHead trains on one view of segments_per_view={T} '
         f'segments per sample, but a sample has {V * T}. Set '
         '`model.cls_head.segments_per_view` to '
         '`model.backbone.num_segments` (and sample one clip per training '
         'video).'),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == message
