# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Top-1/top-5 of an ensemble: fuse the saved scores of tested models.

The papers' "8+16" (TDN Tables 2 and 3) and "8f + 16f" (TDRL Table 1) rows
combine the 8- and 16-frame models. Test each model with ``--dump`` (same
test list), then fuse. Two protocols:

* default: the sum (equivalently the mean) of the members' class
  probabilities, as MMAction2's ``tools/analysis_tools/report_accuracy.py``
  does::

    python tools/test.py CONFIG_8F CHECKPOINT_8F --dump scores_8f.pkl
    python tools/test.py CONFIG_16F CHECKPOINT_16F --dump scores_16f.pkl
    python tools/analysis/fuse_scores.py scores_8f.pkl scores_16f.pkl

* ``--release-logit-sum``: the TDN release's ensemble
  (``pkl_to_results.py --multi_segments``), the sum over both models and
  all their views of the ReLU'd logits, ``sum_m sum_v max(s_mv, 0)``. Dump
  each member with ``average_clips='relu_score'`` (ViewConsensusTSNHead
  then stores ``mean_v max(s_v, 0)``; both members must have the same
  number of views, as in the release)::

    python tools/test.py CONFIG_8F CHECKPOINT_8F --dump logits_8f.pkl \\
        --cfg-options model.cls_head.average_clips=relu_score
    python tools/test.py CONFIG_16F CHECKPOINT_16F --dump logits_16f.pkl \\
        --cfg-options model.cls_head.average_clips=relu_score
    python tools/analysis/fuse_scores.py logits_8f.pkl logits_16f.pkl \\
        --release-logit-sum

(``mim test mmaction_tdx CONFIG --checkpoint CKPT --dump FILE.pkl`` writes
the same files.) The files are read with
:func:`mmaction_tdx.evaluation.score_files.load_score_file`, which refuses
anything a dump never holds (a pickle can run code). The tool checks
that the files hold the same videos in the same order and the kind of
scores the protocol fuses. A video that
was broken when a member was tested (its entry is the stand-in our robust
datasets put in its place, marked ``replaces_left_out_sample``) is left
out of the ensemble, for every member, and named in the output, as the
test metrics do.
"""
import argparse
import pickle
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

PROB_TOLERANCE = 1e-3
# mmaction_tdx.datasets.robust_video_dataset.LEFT_OUT_KEY (not imported:
# the datasets need not load to fuse scores).
LEFT_OUT_KEY = 'replaces_left_out_sample'


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
    scores, labels, _ = read_prediction_file(path)
    return scores, labels


def read_prediction_file(
        path: str) -> Tuple[List[np.ndarray], List[int], Dict[int, dict]]:
    """As :func:`read_predictions`, and the stand-ins of broken videos.

    Returns:
        tuple: Scores, labels, and ``{position: mark}`` of the entries that
        stand in for a broken video (``mark``: its ``index``, ``path`` and
        ``reason``).
    """
    # Not mmengine.load (plain pickle, which runs what a file names):
    # score files are exchanged between people.
    from mmaction_tdx.evaluation.score_files import load_score_file
    samples = load_score_file(path)
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
    left_out = {
        i: dict(s[LEFT_OUT_KEY])
        for i, s in enumerate(samples) if s.get(LEFT_OUT_KEY)
    }
    return scores, labels, left_out


def score_kind(scores: Sequence[np.ndarray]) -> str:
    """``'prob'`` (non-negative rows summing to 1), ``'relu_score'``
    (non-negative otherwise) or ``'score'`` (some negative)."""
    stacked = np.stack(scores)
    if (stacked < 0).any():
        return 'score'
    if np.allclose(stacked.sum(-1), 1.0, atol=PROB_TOLERANCE):
        return 'prob'
    return 'relu_score'


def fuse_prediction_files(
    paths: Sequence[str],
    weights: Optional[Sequence[float]] = None,
    release_logit_sum: bool = False
) -> Tuple[np.ndarray, List[int], Dict[int, dict]]:
    """Weighted sum of the scores of ``paths``, video by video.

    Args:
        paths (Sequence[str]): ``--dump`` files of the members.
        weights (Sequence[float], optional): One per file; defaults to 1
            each (the ranking of a sum and a mean is the same).
        release_logit_sum (bool): Fuse ReLU'd logits (members dumped with
            ``average_clips='relu_score'``), the TDN release's ensemble;
            otherwise class probabilities (``average_clips='prob'``).

    Returns:
        tuple: Fused scores ``(videos, classes)``, the labels, and the
        videos left out (``{position in the list: mark}``): those that
        were broken when any member was tested.
    """
    if len(paths) < 2:
        raise ScoreFileMismatch('fuse at least two prediction files.')
    weights = [1.0] * len(paths) if weights is None else list(weights)
    if len(weights) != len(paths):
        raise ScoreFileMismatch(
            f'{len(weights)} weights for {len(paths)} prediction files.')
    files = [read_prediction_file(path) for path in paths]
    listed = len(files[0][0])
    for path, (scores, _, _) in zip(paths[1:], files[1:]):
        if len(scores) != listed:
            raise ScoreFileMismatch(
                f'{paths[0]} has {listed} videos, {path} has '
                f'{len(scores)}: test both models on the same list.')
    left_out = {}
    for _, _, marks in files:
        for position, mark in marks.items():
            left_out.setdefault(position, mark)
    # A stand-in carries another video's label: compare and fuse the rest.
    kept = [i for i in range(listed) if i not in left_out]
    if not kept:
        raise ScoreFileMismatch(
            f'every video of {paths[0]} was broken when a member was '
            'tested: nothing to fuse.')
    members = [([scores[i] for i in kept], [labels[i] for i in kept])
               for scores, labels, _ in files]
    scores0, labels0 = members[0]
    for path, (scores, labels) in zip(paths[1:], members[1:]):
        if labels != labels0:
            first = kept[next(i for i, (a, b) in enumerate(
                zip(labels0, labels)) if a != b)]
            raise ScoreFileMismatch(
                f'{paths[0]} and {path} disagree on the label of video '
                f'{first}: they are not the same videos in the same order.')
        if scores[0].shape != scores0[0].shape:
            raise ScoreFileMismatch(
                f'{paths[0]} has {scores0[0].shape[-1]} classes, {path} has '
                f'{scores[0].shape[-1]}.')
    expected = 'relu_score' if release_logit_sum else 'prob'
    for path, (scores, _) in zip(paths, members):
        kind = score_kind(scores)
        if kind != expected:
            fix = ("dump it with --cfg-options "
                   f"model.cls_head.average_clips={expected}")
            if not release_logit_sum and kind == 'relu_score':
                fix += ', or fuse with --release-logit-sum'
            raise ScoreFileMismatch(
                f'{path} holds {kind} scores, but this protocol fuses '
                f'{expected} scores: {fix}.')
    fused = sum(w * np.stack(scores)
                for w, (scores, _) in zip(weights, members))
    return fused, labels0, left_out


def accuracies(scores: np.ndarray, labels: Sequence[int],
               topk: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """Top-k accuracies and the mean class accuracy, in [0, 1]."""
    from mmaction.evaluation.functional import (
        mean_class_accuracy,
        top_k_accuracy,
    )
    scores = list(scores)
    labels = list(labels)
    result = {
        f'top{k}': float(acc)
        for k, acc in zip(topk, top_k_accuracy(scores, labels, topk))
    }
    result['mean_class_accuracy'] = float(mean_class_accuracy(scores, labels))
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Fuse the prediction files of several models and report '
        'the ensemble accuracy.')
    parser.add_argument(
        'preds', nargs='+', help='prediction files (tools/test.py --dump)')
    parser.add_argument(
        '--weights',
        nargs='+',
        type=float,
        help='weight of each file (default: 1 each)')
    parser.add_argument(
        '--release-logit-sum',
        action='store_true',
        help="the TDN release's 8+16 ensemble: sum the members' ReLU'd "
        "logits (dump them with average_clips='relu_score')")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        scores, labels, left_out = fuse_prediction_files(
            args.preds, args.weights, args.release_logit_sum)
    except (OSError, ValueError, pickle.UnpicklingError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    result = accuracies(scores, labels)
    protocol = ("sum of ReLU'd logits (TDN release)"
                if args.release_logit_sum else 'sum of probabilities')
    listed = len(labels) + len(left_out)
    print(f'Ensemble of {len(args.preds)} models on {len(labels)} of '
          f'{listed} listed videos ({protocol})')
    if left_out:
        print(f'{len(left_out)} left out (broken when tested): ' + '; '.join(
            f"{mark.get('path', '?')} ({mark.get('reason', 'broken')})"
            for _, mark in sorted(left_out.items())))
    print(f'Top 1 Accuracy: {result["top1"]:.4f}')
    print(f'Top 5 Accuracy: {result["top5"]:.4f}')
    print(f'Mean Class Accuracy: {result["mean_class_accuracy"]:.4f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
