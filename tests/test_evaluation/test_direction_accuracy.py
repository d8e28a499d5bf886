# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""DirectionAccuracy against hand-counted examples."""
import math

import numpy as np
import pytest
import torch
from mmaction.registry import METRICS
from mmengine.evaluator import Evaluator

import mmaction_tdx  # noqa: F401  (registers the metric)

# The synthetic dataset's reversal pairs, written out independently of the
# library: right/left, down/up, approaching/receding, cw/acw, appear/vanish.
PAIRS = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]


def evaluate(preds, labels, **kwargs):
    """The metric through MMEngine's Evaluator, on one-hot scores."""
    evaluator = Evaluator(
        [METRICS.build(dict(type='DirectionAccuracy', **kwargs))])
    samples = [dict(pred_score=torch.eye(10)[p], gt_label=torch.tensor([g]))
               for p, g in zip(preds, labels)]
    evaluator.process(samples)
    return evaluator.evaluate(len(samples))


def test_kind_and_direction_counted_by_hand():
    labels = [0, 1, 2, 3, 0, 1, 6]
    # 0: right; 1: right pair, wrong direction (0 for 1); 2: right;
    # 3: right pair, wrong direction; 4: wrong kind (label 0, pred 4);
    # 5: right; 6: wrong kind (label 6, pred 1)
    preds = [0, 0, 2, 2, 4, 1, 1]
    m = evaluate(preds, labels)
    # kind: clips 0, 1, 2, 3, 5 of 7
    assert m['direction/kind_acc'] == pytest.approx(5 / 7)
    # direction within the right pair: 0, 2, 5 right of 0, 1, 2, 3, 5
    assert m['direction/acc'] == pytest.approx(3 / 5)
    assert m['direction/num_clips'] == 5
    # pair 0 (labels 0/1): clips 0, 1, 5 in the right pair, 0 and 5 right
    assert m['direction/pair0_acc'] == pytest.approx(2 / 3)
    assert m['direction/pair1_acc'] == pytest.approx(1 / 2)
    # pair 3: its only clip has the wrong kind; pairs 2, 4: no clips
    for j in (2, 3, 4):
        assert math.isnan(m[f'direction/pair{j}_acc'])


def test_direction_right_but_kind_wrong_is_not_a_direction_hit():
    # "moving right" (0) predicted as "moving down" (2): both are the first
    # class of their pair, yet the kind is wrong, so the clip is left out
    # of the direction count instead of counting as a right direction.
    m = evaluate([2, 3], [0, 1])
    assert m['direction/kind_acc'] == 0.0
    assert m['direction/num_clips'] == 0
    assert math.isnan(m['direction/acc'])


def test_reversed_predictions_are_right_kind_wrong_direction():
    # A model that always predicts the reversal: kind 100 %, direction 0 %.
    labels = list(range(10))
    preds = [label ^ 1 for label in labels]
    m = evaluate(preds, labels)
    assert m['direction/kind_acc'] == 1.0
    assert m['direction/acc'] == 0.0 and m['direction/num_clips'] == 10


def test_custom_pairs_and_unpaired_classes():
    # Pairs (3, 7) and (1, 2); classes 0, 4.. are in no pair.
    pairs = [(3, 7), (1, 2)]
    labels = [3, 7, 1, 0, 5]
    preds = [3, 3, 2, 0, 5]  # right; wrong dir; wrong dir; unpaired x2
    m = evaluate(preds, labels, pairs=pairs, prefix='flip')
    assert m['flip/kind_acc'] == 1.0  # 3 paired clips, all right kind
    assert m['flip/acc'] == pytest.approx(1 / 3)
    assert m['flip/pair0_acc'] == pytest.approx(1 / 2)
    assert m['flip/pair1_acc'] == 0.0


@pytest.mark.parametrize('pairs', [[(0, 0)], [(0, 1), (1, 2)], [(0, 1, 2)]])
def test_malformed_pairs_are_refused(pairs):
    with pytest.raises(ValueError, match='pair'):
        METRICS.build(dict(type='DirectionAccuracy', pairs=pairs))


def test_default_pairs_are_the_synthetic_datasets():
    metric = METRICS.build(dict(type='DirectionAccuracy'))
    assert metric.pairs == PAIRS
    # scores as numpy arrays (a dumped pickle's form) work too
    metric.process(None, [dict(pred_score=np.eye(10)[1],
                               gt_label=np.array([1]))])
    assert metric.compute_metrics(metric.results)['acc'] == 1.0
