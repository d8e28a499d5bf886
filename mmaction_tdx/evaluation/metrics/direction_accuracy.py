# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Accuracy of telling a motion from its reversal.

For datasets whose classes come in *reversal pairs* (a clip of one class
played backwards is a clip of the other, e.g. "moving right" / "moving
left"), top-1 mixes two abilities: recognising the kind of motion (which
pair) and its direction (which class of the pair). A frame-order-blind
model (TSN averages frames; a clip and its reversal have the same frames)
can be perfect at the first and stays at 50 % on the second by
construction. With :math:`y_i` the label and :math:`\\hat y_i =
\\arg\\max_k s_{ik}` the prediction of clip :math:`i`, :math:`p(c)` the
pair of class :math:`c`, and :math:`P` the clips whose label is in a pair:

.. math::

    \\text{kind} = \\frac{|\\{i \\in P : p(\\hat y_i) = p(y_i)\\}|}{|P|},
    \\qquad
    \\text{direction} = \\frac{|\\{i \\in K : \\hat y_i = y_i\\}|}{|K|},
    \\quad K = \\{i \\in P : p(\\hat y_i) = p(y_i)\\},

and per pair :math:`j` the direction over :math:`K_j = \\{i \\in K :
p(y_i) = j\\}`. A ratio with an empty denominator is NaN.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmaction.registry import METRICS
from mmengine.evaluator import BaseMetric

from mmaction_tdx.datasets.synthetic_motion import CLASSES, MOTION_PAIRS

#: Class-index pairs of the synthetic motion dataset (labels 0/1, 2/3, ...).
SYNTHETIC_MOTION_PAIRS: Tuple[Tuple[int, int], ...] = tuple(
    (CLASSES.index(a), CLASSES.index(b)) for a, b in MOTION_PAIRS)


@METRICS.register_module()
class DirectionAccuracy(BaseMetric):
    """Motion-kind and direction accuracy over reversal pairs of classes.

    Used beside ``AccMetric`` (top-1, top-5), e.g.
    ``val_evaluator = [dict(type='AccMetric'),
    dict(type='DirectionAccuracy')]``. Keys (with the default prefix):

    * ``direction/kind_acc``: the predicted class is in the label's pair;
    * ``direction/acc``: among those, the predicted class is the label;
    * ``direction/num_clips``: how many clips ``direction/acc`` counts
      (for a confidence interval);
    * ``direction/pair{j}_acc``: ``direction/acc`` of the clips of pair j.

    Clips whose label is in no pair count in none of them.

    Args:
        pairs (Sequence[Sequence[int]], optional): class-index pairs
            ``(a, b)``, each class in at most one pair. Defaults to the
            synthetic motion dataset's (:data:`SYNTHETIC_MOTION_PAIRS`).
        collect_device (str): as :class:`mmengine.evaluator.BaseMetric`.
        prefix (str, optional): key prefix. Defaults to ``'direction'``.
    """
    default_prefix: Optional[str] = 'direction'

    def __init__(self,
                 pairs: Optional[Sequence[Sequence[int]]] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        pairs = SYNTHETIC_MOTION_PAIRS if pairs is None else pairs
        self.pairs = [tuple(int(c) for c in pair) for pair in pairs]
        self._pair_of: Dict[int, int] = {}
        for index, pair in enumerate(self.pairs):
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(
                    f'DirectionAccuracy: pair {pair} is not two different '
                    'class indices; write pairs as [(a, b), ...], e.g. '
                    '[(0, 1), (2, 3)].')
            for cls in pair:
                if cls in self._pair_of:
                    raise ValueError(
                        f'DirectionAccuracy: class {cls} is in pairs '
                        f'{self.pairs[self._pair_of[cls]]} and {pair}; '
                        'each class belongs to at most one reversal pair.')
                self._pair_of[cls] = index

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep ``(argmax of pred_score, gt_label)`` of every sample."""
        for sample in data_samples:
            score = np.asarray(_to_numpy(sample['pred_score']))
            label = np.asarray(_to_numpy(sample['gt_label'])).reshape(-1)
            self.results.append((int(score.argmax()), int(label[0])))

    def compute_metrics(self, results: List[Tuple[int, int]]) -> dict:
        preds = np.array([p for p, _ in results], dtype=int)
        labels = np.array([g for _, g in results], dtype=int)
        label_pair = np.array([self._pair_of.get(g, -1) for g in labels])
        pred_pair = np.array([self._pair_of.get(p, -2) for p in preds])
        in_pairs = label_pair >= 0
        kind_right = in_pairs & (pred_pair == label_pair)
        correct = preds == labels
        metrics = dict(
            kind_acc=_ratio(kind_right.sum(), in_pairs.sum()),
            acc=_ratio((correct & kind_right).sum(), kind_right.sum()),
            num_clips=int(kind_right.sum()))
        for index in range(len(self.pairs)):
            chosen = kind_right & (label_pair == index)
            metrics[f'pair{index}_acc'] = _ratio(
                (correct & chosen).sum(), chosen.sum())
        return metrics


def _to_numpy(value):
    return value.detach().cpu().numpy() if hasattr(value, 'detach') \
        else value


def _ratio(numerator, denominator) -> float:
    return float(numerator) / float(denominator) if denominator else \
        float('nan')
