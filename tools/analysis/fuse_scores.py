# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Top-1/top-5 of an ensemble: fuse the saved scores of tested models.

The papers' "8+16" (TDN Tables 2 and 3) and "8f + 16f" (TDRL Table 1) rows
average the class scores of the 8- and 16-frame models. Test each model
with ``--dump`` (same test list), then fuse::

    python tools/test.py CONFIG_8F CHECKPOINT_8F --dump scores_8f.pkl
    python tools/test.py CONFIG_16F CHECKPOINT_16F --dump scores_16f.pkl
    python tools/analysis/fuse_scores.py scores_8f.pkl scores_16f.pkl

(``mim test mmaction_tdx CONFIG --checkpoint CKPT --dump FILE.pkl`` writes
the same files.) This is MMAction2's
``tools/analysis_tools/report_accuracy.py`` with a check that the files
hold the same videos in the same order.
"""
import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


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
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, REPO_ROOT)
    from mmaction_tdx.utils.score_fusion import (
        ScoreFileMismatch,
        accuracies,
        fuse_prediction_files,
    )
    try:
        scores, labels = fuse_prediction_files(args.preds, args.weights)
    except (ScoreFileMismatch, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    result = accuracies(scores, labels)
    print(f'Ensemble of {len(args.preds)} models on {len(labels)} videos')
    print(f'Top 1 Accuracy: {result["top1"]:.4f}')
    print(f'Top 5 Accuracy: {result["top5"]:.4f}')
    print(f'Mean Class Accuracy: {result["mean_class_accuracy"]:.4f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
