# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Generate the synthetic, motion-defined video dataset of the quick start
(:mod:`mmaction_tdx.datasets.synthetic_motion`): 10 classes in 5 reversal
pairs, mp4 clips plus MMAction2 video lists and a label map.

Example::

    python tools/data/generate_synthetic_motion.py data/synthetic_motion
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def parse_args(argv=None):
    from mmaction_tdx.datasets.synthetic_motion import SyntheticMotionSpec
    defaults = SyntheticMotionSpec(root='')
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument(
        '--train-per-class', type=int, default=25,
        help='training clips per class (25, as the quick start)')
    parser.add_argument('--val-per-class', type=int,
                        default=10, help='validation clips per class')
    parser.add_argument('--frames', type=int, default=defaults.frames)
    parser.add_argument('--size', type=int, default=defaults.size,
                        help='frame size in pixels (64-112)')
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--background-contrast', type=float,
                        default=defaults.background_contrast)
    parser.add_argument('--nproc', type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmaction_tdx.datasets.synthetic_motion import (
        SyntheticMotionSpec,
        generate,
    )
    spec = SyntheticMotionSpec(
        root=args.root, num_train_per_class=args.train_per_class,
        num_val_per_class=args.val_per_class, frames=args.frames,
        size=args.size, seed=args.seed,
        background_contrast=args.background_contrast)
    outputs = generate(spec, nproc=args.nproc)
    print('\nwrote ' + ', '.join(outputs.values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
