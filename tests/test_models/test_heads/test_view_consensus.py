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
