# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The quick-start job behind ``make demo``.

1. Generates the synthetic motion dataset (``data/synthetic_motion``; kept if
   it already matches).
2. Trains every config in ``configs/quickstart/`` on the CPU with
   ``tools/train.py`` and tests its last checkpoint with ``tools/test.py``.
3. Prints one table: top-1 / top-5 over all classes, the accuracy of telling
   the *kind* of motion apart (which reversal pair), and the accuracy of the
   *direction* within the right pair, where a frame-order-blind model stays
   near 50 %.

Example::

    python tools/run_quickstart.py                  # everything
    python tools/run_quickstart.py --models tsn tdn --epochs 2
"""
import argparse
import glob
import os
import os.path as osp
import pickle
import subprocess
import sys
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmaction_tdx.datasets.synthetic_motion import (  # noqa: E402
    SyntheticMotionSpec,
    generate,
)

DATA_ROOT = osp.join('data', 'synthetic_motion')
# The dataset the quick-start configs are tuned for.
DEMO_SPEC = dict(
    num_train_per_class=40, num_val_per_class=10, frames=24, size=64)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--models',
        nargs='+',
        help='prefixes of quick-start config names to run (default: all)')
    parser.add_argument(
        '--epochs', type=int, help='override the configs\' max_epochs')
    parser.add_argument('--work-dir', default='work_dirs/quickstart')
    parser.add_argument('--data-root', default=DATA_ROOT)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--train-per-class',
        type=int,
        default=DEMO_SPEC['num_train_per_class'],
        help='training clips per class of the generated dataset')
    parser.add_argument(
        '--val-per-class',
        type=int,
        default=DEMO_SPEC['num_val_per_class'],
        help='validation clips per class of the generated dataset')
    return parser.parse_args()


def quickstart_configs(prefixes=None):
    configs = sorted(
        glob.glob(osp.join(ROOT, 'configs', 'quickstart', '*.py')))
    if prefixes:
        configs = [
            c for c in configs
            if any(osp.basename(c).startswith(p) for p in prefixes)
        ]
    # Order of the table: the stock baselines first.
    order = ['tsn', 'tsm', 'tdn', 'tdrl']
    return sorted(
        configs,
        key=lambda c: (order.index(osp.basename(c).split('_')[0])
                       if osp.basename(c).split('_')[0] in order else 99, c))


def data_options(data_root: str) -> list:
    options = []
    for split, loader in (('train', 'train_dataloader'),
                          ('val', 'val_dataloader'), ('val',
                                                      'test_dataloader')):
        options += [
            f'{loader}.dataset.ann_file={data_root}/{split}_list.txt',
            f'{loader}.dataset.data_prefix.video={data_root}/videos'
        ]
    return options


def run(cmd: list, log_path: str) -> None:
    with open(log_path, 'w') as log:
        result = subprocess.run(
            cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-30:])
        raise RuntimeError(f'command failed ({" ".join(cmd)}); last lines '
                           f'of {log_path}:\n{tail}')


def summarise(dump_path: str) -> dict:
    with open(dump_path, 'rb') as f:
        samples = pickle.load(f)
    scores = np.stack([np.asarray(s['pred_score']) for s in samples])
    labels = np.array([int(np.asarray(s['gt_label']).reshape(-1)[0])
                       for s in samples])
    top5 = np.argsort(-scores, axis=1)[:, :5]
    pred = top5[:, 0]
    same_pair = (pred // 2) == (labels // 2)
    return dict(
        top1=float(np.mean(pred == labels)),
        top5=float(np.mean([lab in row for lab, row in zip(labels, top5)])),
        pair=float(np.mean(same_pair)),
        direction=float(np.mean(pred[same_pair] == labels[same_pair]))
        if same_pair.any() else float('nan'),
        clips=len(labels))


def main():
    args = parse_args()
    start = time.time()
    spec_options = dict(
        DEMO_SPEC,
        num_train_per_class=args.train_per_class,
        num_val_per_class=args.val_per_class)
    spec = SyntheticMotionSpec(
        root=osp.join(ROOT, args.data_root), seed=args.seed, **spec_options)
    print(f'[1/3] synthetic motion data in {args.data_root}')
    generate(spec)
    configs = quickstart_configs(args.models)
    if not configs:
        raise SystemExit(f'no quick-start config matches {args.models}')
    rows = []
    python = sys.executable
    for number, config in enumerate(configs, 1):
        name = osp.splitext(osp.basename(config))[0]
        work_dir = osp.join(args.work_dir, name)
        os.makedirs(work_dir, exist_ok=True)
        options = data_options(args.data_root)
        if args.epochs:
            options.append(f'train_cfg.max_epochs={args.epochs}')
        print(f'[2/3] ({number}/{len(configs)}) training {name}', flush=True)
        began = time.time()
        run([
            python, 'tools/train.py', config, '--work-dir', work_dir,
            '--seed', str(args.seed), '--cfg-options', *options
        ], osp.join(work_dir, 'train.log'))
        train_time = time.time() - began
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        dump = osp.join(work_dir, 'val_predictions.pkl')
        run([
            python, 'tools/test.py', config, checkpoint, '--work-dir',
            work_dir, '--dump', dump, '--cfg-options', *options
        ], osp.join(work_dir, 'test.log'))
        rows.append(dict(model=name.split('_')[0].upper(), config=name,
                         train_s=train_time, **summarise(dump)))
    print('[3/3] results on the validation split '
          f'({rows[0]["clips"]} clips, 10 classes; chance: top-1 10 %, '
          'direction 50 %)\n')
    header = (f'{"model":<6} {"top-1":>7} {"top-5":>7} {"motion kind":>12} '
              f'{"direction":>10} {"train s":>8}  config')
    print(header)
    print('-' * len(header))
    for row in rows:
        print(f'{row["model"]:<6} {row["top1"]:>7.1%} {row["top5"]:>7.1%} '
              f'{row["pair"]:>12.1%} {row["direction"]:>10.1%} '
              f'{row["train_s"]:>8.0f}  {row["config"]}')
    print(f'\nquick start finished: {len(rows)} models in '
          f'{time.time() - start:.0f} s; logs and checkpoints in '
          f'{args.work_dir}/')


if __name__ == '__main__':
    main()
