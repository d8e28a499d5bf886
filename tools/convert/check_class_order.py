# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Which class order does a converted checkpoint really use?

Scores a short labelled video list (e.g. 20 validation videos) with the
checkpoint and reads the top-1 / top-5 accuracy under each candidate class
order off the same scores. The right order scores far above chance, a
wrong one near chance. Takes a minute on a CPU for 20 videos::

    CONFIG=configs/tdn/tdn_imagenet-pretrained-r50_8xb16-5x1x8-100e_\\
kinetics400-rgb.py
    python tools/convert/check_class_order.py $CONFIG \\
        checkpoints/tdn_r50_k400.pth data/kinetics400/val_20.txt \\
        --data-prefix data/kinetics400/videos_val

``VIDEO_LIST`` is a list in the config's dataset format (``path label``
per line for videos, ``frame_dir total_frames label`` for raw frames),
with labels in the dataset's (MMAction2's) order; videos are read through
the config's validation pipeline (``--views test``: its test pipeline).

A candidate order is a class map as ``tools/convert/tdn_official.py
--class-map`` reads it: entry ``i`` is the checkpoint's index of the
dataset's class ``i``. Built in, by the checkpoint's class count:

* every count: ``as-converted`` (the checkpoint's order is the dataset's);
* 400 (Kinetics-400): ``third-party-map`` (the checkpoint is in the order
  of the unverified third-party ``kinetics-400-map.txt``, i.e. it should
  have been converted with ``--label-order kinetics400-third-party-map``)
  and ``undo-third-party-map`` (it was converted with that map but is in
  MMAction2's order);
* 174 (Something-Something): ``sthv1-remap`` (alphabetical checkpoint, V1
  data in MMAction2's order: convert with ``--label-order sthv1``) and
  ``undo-sthv1-remap`` (remapped, but the data is alphabetical, as V2).

``--candidate NAME=FILE`` adds any other map. The tool says which order
fits, and warns (exit code 1) when none is clearly better than the rest:
the best must beat the runner-up by ``max(3, 20%)`` of the videos.
"""
import argparse
import math
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check the class order of a converted checkpoint on a '
        'few labelled videos.')
    parser.add_argument('config', help='config of the checkpoint')
    parser.add_argument('checkpoint', help='converted checkpoint (.pth)')
    parser.add_argument(
        'video_list', help='labelled list in the dataset format of the '
        "config (labels in the dataset's order)")
    parser.add_argument(
        '--data-prefix',
        help="folder the list's paths are relative to (default: the "
        "config's validation data_prefix)")
    parser.add_argument(
        '--candidate',
        action='append',
        default=[],
        metavar='NAME=FILE',
        help='extra candidate order: one checkpoint class index per line, '
        "line i for the dataset's class i (repeatable)")
    parser.add_argument(
        '--views',
        choices=('val', 'test'),
        default='val',
        help="pipeline to read the videos with (default: the config's "
        'validation pipeline, one view)')
    parser.add_argument('--max-videos', type=int, help='use the first N')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--no-strict',
        action='store_true',
        help='load a checkpoint that does not fit the model (missing, '
        'unexpected or mismatched keys keep their initialisation)')
    return parser.parse_args(argv)


def read_class_map(path: str) -> List[int]:
    with open(path) as f:
        return [int(line) for line in f if line.strip()]


def inverse(perm: Sequence[int]) -> List[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def builtin_candidates(num_classes: int) -> Dict[str, Tuple[List[int], str]]:
    """Candidate orders for a checkpoint of ``num_classes`` classes."""
    from mmaction_tdx.models.utils.tdn_class_orders import (
        KINETICS400_FROM_THIRD_PARTY_MAP,
        STHV1_FROM_RELEASE,
    )
    candidates = {
        'as-converted': (list(range(num_classes)),
                         "the checkpoint's order is the dataset's")
    }
    if num_classes == 400:
        perm = list(KINETICS400_FROM_THIRD_PARTY_MAP)
        candidates['third-party-map'] = (
            perm, 'checkpoint in the third-party kinetics-400-map.txt order '
            '(convert with --label-order kinetics400-third-party-map)')
        candidates['undo-third-party-map'] = (
            inverse(perm), 'converted with the third-party map, but the '
            "checkpoint was in MMAction2's order (convert with "
            '--label-order kinetics400)')
    elif num_classes == 174:
        perm = list(STHV1_FROM_RELEASE)
        candidates['sthv1-remap'] = (
            perm, 'checkpoint alphabetical, data in MMAction2 V1 order '
            '(convert with --label-order sthv1)')
        candidates['undo-sthv1-remap'] = (
            inverse(perm), 'converted with --label-order sthv1, but the data '
            'is alphabetical (V2: convert with --label-order sthv2)')
    return candidates


def count_hits(scores: Sequence, labels: Sequence[int],
               perm: Sequence[int]) -> Tuple[int, int]:
    """Top-1 and top-5 hits of ``scores`` (checkpoint order) when the
    dataset's class ``i`` is the checkpoint's class ``perm[i]``."""
    import torch
    top1 = top5 = 0
    for score, label in zip(scores, labels):
        target = score[perm[label]]
        rank = int((torch.as_tensor(score) > target).sum())
        top1 += rank == 0
        top5 += rank < 5
    return top1, top5


def judge(hits: Dict[str, int], num_videos: int) -> Tuple[Optional[str], str]:
    """The candidate that fits, or None, and why."""
    ranked = sorted(hits.items(), key=lambda kv: kv[1], reverse=True)
    margin = max(3, math.ceil(0.2 * num_videos))
    best, best_hits = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    if best_hits - runner_up >= margin:
        return best, (f'{best!r} fits: {best_hits}/{num_videos} top-1, '
                      f'{best_hits - runner_up} more than any other order '
                      f'(needed: {margin}).')
    return None, (
        f'no order is clearly better (best {best!r}: {best_hits}/'
        f'{num_videos} top-1, runner-up {runner_up}; needed a lead of '
        f'{margin}). Use more videos, check that they are validation '
        "videos of the checkpoint's dataset with labels in MMAction2's "
        'order, and that the config matches the checkpoint.')


def build_dataset(cfg, video_list: str, data_prefix: Optional[str],
                  views: str):
    from mmaction.registry import DATASETS
    dataset_cfg = cfg[f'{views}_dataloader'].dataset.to_dict()
    dataset_cfg['ann_file'] = video_list
    if data_prefix is not None:
        keys = dataset_cfg.get('data_prefix') or {'video': None}
        dataset_cfg['data_prefix'] = {k: data_prefix for k in keys}
    dataset_cfg['test_mode'] = True
    return DATASETS.build(dataset_cfg)


def score_videos(model, dataset, max_videos: Optional[int]):
    """Class scores (checkpoint order) and labels of the dataset's videos.
    """
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.utils import ProgressBar
    count = len(dataset) if max_videos is None else min(
        max_videos, len(dataset))
    scores, labels = [], []
    bar = ProgressBar(count, file=sys.stdout)
    with torch.no_grad():
        for index in range(count):
            sample = dataset[index]
            (result, ) = model.test_step(pseudo_collate([sample]))
            scores.append(result.pred_score.float().cpu())
            labels.append(int(result.gt_label.reshape(-1)[0]))
            bar.update()
    sys.stdout.write('\n')
    return scores, labels


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, REPO_ROOT)
    from mmengine import Config

    import mmaction_tdx  # noqa: F401  (registers our modules)
    from mmaction_tdx.apis import (
        CheckpointMismatchError,
        init_video_recognizer,
    )

    cfg = Config.fromfile(args.config)
    try:
        # Strict: a checkpoint of another model would be judged on a
        # half-initialised network.
        model = init_video_recognizer(
            cfg, args.checkpoint, args.device, strict=not args.no_strict)
    except (CheckpointMismatchError, KeyError, OSError, ValueError) as err:
        print(f'error: cannot load {args.checkpoint} into the model of '
              f'{args.config}: {err}', file=sys.stderr)
        return 1
    num_classes = model.cls_head.num_classes
    candidates = builtin_candidates(num_classes)
    for item in args.candidate:
        name, sep, path = item.partition('=')
        if not sep:
            print(f'error: --candidate {item!r}: write NAME=FILE',
                  file=sys.stderr)
            return 1
        from mmaction_tdx.models.utils.tdn_class_orders import (
            check_permutation,
        )
        try:
            perm = check_permutation(read_class_map(path), num_classes)
        except (OSError, ValueError) as err:
            print(f'error: --candidate {name}={path}: {err}',
                  file=sys.stderr)
            return 1
        candidates[name] = (perm, f'class map {path}')

    dataset = build_dataset(cfg, args.video_list, args.data_prefix,
                            args.views)
    scores, labels = score_videos(model, dataset, args.max_videos)
    if not labels:
        print(f'error: {args.video_list} lists no videos', file=sys.stderr)
        return 1

    top1 = {}
    width = max(len(n) for n in candidates)
    print(f'{len(labels)} videos, {num_classes} classes '
          f'(chance: {len(labels) / num_classes:.2f} videos)')
    print(f'{"order":<{width}}  top-1  top-5  meaning')
    for name, (perm, meaning) in candidates.items():
        hits1, hits5 = count_hits(scores, labels, perm)
        top1[name] = hits1
        print(f'{name:<{width}}  {hits1:>5}  {hits5:>5}  {meaning}')
    fit, message = judge(top1, len(labels))
    if fit is None:
        print(f'WARNING: {message}')
        return 1
    print(message)
    return 0


if __name__ == '__main__':
    sys.exit(main())
