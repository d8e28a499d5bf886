# Copyright (c) mmaction_tdx contributors. All rights reserved.
# mmaction_tdx first: its compat fixes make `mmaction.models` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import pytest
import torch
from mmaction.models.heads import TSNHead
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample

T, C = 4, 16


def _head(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='TSNTDHead', num_classes=3, in_channels=C)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _samples(n=2):
    return [ActionDataSample().set_gt_label(i % 3) for i in range(n)]


def test_without_loss_td_is_a_tsn_head():
    head = _head()
    assert isinstance(head, TSNHead)
    assert head.backbone_aux_outputs == ()
    losses = head.loss(torch.randn(2 * T, C, 2, 2), _samples(), num_segs=T)
    assert 'loss_cls' in losses and 'loss_td' not in losses


def test_loss_td_sums_the_blocks():
    head = _head(loss_td=dict(type='TemporalDiversityLoss'))
    assert head.backbone_aux_outputs == ('td_features', )
    td = [torch.randn(2 * T, 8, 4, 4), torch.randn(2 * T, 6, 2, 2)]
    losses = head.loss(
        torch.randn(2 * T, C, 2, 2), _samples(), num_segs=T, td_features=td)
    reference = MODELS.build(
        dict(type='TemporalDiversityLoss', num_segments=T))
    expected = reference(td[0]) + reference(td[1])
    assert torch.allclose(losses['loss_td'], expected)
    assert set(losses) >= {'loss_cls', 'loss_td'}


def test_explicit_num_segments_wins_over_num_segs():
    # Two views of T segments: num_segs is 2T, the videos have T segments.
    head = _head(loss_td=dict(type='TemporalDiversityLoss', num_segments=T))
    td = [torch.randn(2 * T, 8, 3, 3)]
    losses = head.loss(
        torch.randn(2 * T, C, 2, 2), _samples(1), num_segs=2 * T,
        td_features=td)
    reference = MODELS.build(
        dict(type='TemporalDiversityLoss', num_segments=T))
    assert torch.allclose(losses['loss_td'], reference(td[0]))


def test_missing_td_features_is_explained():
    head = _head(loss_td=dict(type='TemporalDiversityLoss'))
    with pytest.raises(ValueError, match='no `td_features`'):
        head.loss(torch.randn(2 * T, C, 2, 2), _samples(), num_segs=T)


def test_eval_mode_loss_leaves_td_loss_out():
    """Validation-loss hooks call an eval-mode model with mode='loss': the
    backbone computes no TD features then, and the head omits the term."""
    head = _head(loss_td=dict(type='TemporalDiversityLoss')).eval()
    feats = torch.randn(2 * T, C, 2, 2)
    losses = head.loss(feats, _samples(), num_segs=T)
    assert set(losses) == set(_head().loss(feats, _samples(), num_segs=T))
    assert 'loss_td' not in losses
    # Given features, eval mode still computes it.
    losses = head.loss(feats, _samples(), num_segs=T,
                       td_features=[torch.randn(2 * T, 8, 4, 4)])
    assert 'loss_td' in losses


# The tests below kill mutmut survivors (docs/dev/testing.md names each).
def test_view_consensus_and_tsn_head_arguments_reach_the_head():
    head = _head(segments_per_view=T, dropout_ratio=0.3,
                 average_clips='score', init_std=0.05)
    assert head.segments_per_view == T and head.dropout_ratio == 0.3
    assert head.average_clips == 'score' and head.init_std == 0.05


def test_loss_td_without_num_segments_gets_num_segs():
    """A TD loss with no ``num_segments`` attribute at all (any loss, not
    only TemporalDiversityLoss) is given the recognizer's ``num_segs``."""
    head = _head(loss_td=dict(type='TemporalDiversityLoss'))
    calls = []

    class PlainLoss(torch.nn.Module):

        def forward(self, z, num_segments):
            calls.append(num_segments)
            return z.sum() * 0

    head.loss_td = PlainLoss()
    head.loss(torch.randn(2 * T, C, 2, 2), _samples(), num_segs=T,
              td_features=[torch.randn(2 * T, 4, 2, 2)])
    assert calls == [T]


def test_missing_td_features_message_verbatim():
    head = _head(loss_td=dict(type='TemporalDiversityLoss'))
    with pytest.raises(ValueError) as info:
        head.loss_by_td_features([], T)
    assert str(info.value) == (
        'TSNTDHead has `loss_td` but received no `td_features`. Use '
        '`SegmentRecognizer2D` with a backbone that provides them (e.g. '
        'ResNetTDRL with non-empty `td_blocks`), or remove `loss_td`.')
