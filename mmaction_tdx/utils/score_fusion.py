# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Ensembles of tested models ("8+16", "8f + 16f" in the papers' tables).

An ensemble is scored by averaging the class scores that the member models
give each test video, as MMAction2's
``tools/analysis_tools/report_accuracy.py`` does, on the prediction files
that ``tools/test.py CONFIG CHECKPOINT --dump FILE.pkl`` writes (one dict
per video with ``pred_score`` and ``gt_label``). Unlike that script,
:func:`fuse_prediction_files` checks that the files are predictions for
the same videos in the same order (same count, same labels), since
``zip``-ing files of different test lists gives a meaningless accuracy.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmaction.evaluation.functional import (
    get_weighted_score,
    mean_class_accuracy,
    top_k_accuracy,
)
from mmengine import load


class ScoreFileMismatch(ValueError):
    """Prediction files that cannot be fused."""


def _as_numpy(value) -> np.ndarray:
    return value.numpy() if hasattr(value, 'numpy') else np.asarray(value)


def read_predictions(path: str) -> Tuple[List[np.ndarray], List[int]]:
    """Class scores and labels of the videos in a ``--dump`` file.

    Args:
        path (str): Pickle written by ``tools/test.py --dump``.

    Returns:
        tuple: One score vector per video and the videos' labels.
    """
    samples = load(path)
    if not isinstance(samples, (list, tuple)) or not samples:
        raise ScoreFileMismatch(f'{path}: expected a non-empty list of '
                                'predictions (tools/test.py --dump).')
    try:
        scores = [_as_numpy(s['pred_score']).astype(np.float64)
                  for s in samples]
        labels = [int(_as_numpy(s['gt_label']).reshape(-1)[0])
                  for s in samples]
    except (KeyError, TypeError) as err:
        raise ScoreFileMismatch(
            f'{path}: a prediction lacks pred_score/gt_label ({err}); '
            'write the file with tools/test.py ... --dump FILE.pkl.') from err
    return scores, labels


def fuse_prediction_files(paths: Sequence[str],
                          weights: Optional[Sequence[float]] = None
                          ) -> Tuple[np.ndarray, List[int]]:
    """Weighted sum of the scores of ``paths``, video by video.

    Args:
        paths (Sequence[str]): ``--dump`` files of the members.
        weights (Sequence[float], optional): One per file; defaults to 1
            each (the papers average the members' scores; the ranking of a
            sum and a mean is the same).

    Returns:
        tuple: Fused scores ``(videos, classes)`` and the labels.
    """
    if len(paths) < 2:
        raise ScoreFileMismatch('fuse at least two prediction files.')
    weights = [1.0] * len(paths) if weights is None else list(weights)
    if len(weights) != len(paths):
        raise ScoreFileMismatch(
            f'{len(weights)} weights for {len(paths)} prediction files.')
    members = [read_predictions(path) for path in paths]
    scores0, labels0 = members[0]
    for path, (scores, labels) in zip(paths[1:], members[1:]):
        if len(scores) != len(scores0):
            raise ScoreFileMismatch(
                f'{paths[0]} has {len(scores0)} videos, {path} has '
                f'{len(scores)}: test both models on the same list.')
        if labels != labels0:
            first = next(i for i, (a, b) in enumerate(zip(labels0, labels))
                         if a != b)
            raise ScoreFileMismatch(
                f'{paths[0]} and {path} disagree on the label of video '
                f'{first}: they are not the same videos in the same order.')
        if scores[0].shape != scores0[0].shape:
            raise ScoreFileMismatch(
                f'{paths[0]} has {scores0[0].shape[-1]} classes, {path} has '
                f'{scores[0].shape[-1]}.')
    fused = get_weighted_score([scores for scores, _ in members], weights)
    return np.stack(fused), labels0


def accuracies(scores: np.ndarray, labels: Sequence[int],
               topk: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """Top-k accuracies and the mean class accuracy, in [0, 1]."""
    scores = list(scores)
    labels = list(labels)
    result = {
        f'top{k}': float(acc)
        for k, acc in zip(topk, top_k_accuracy(scores, labels, topk))
    }
    result['mean_class_accuracy'] = float(mean_class_accuracy(scores, labels))
    return result
