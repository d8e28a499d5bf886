# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Find unreadable and too short videos of a video list; write a clean list.

Example::

    python tools/analysis/check_videos.py data/k400/train.txt \\
        --data-prefix data/k400/videos --min-frames 8 --nproc 8 \\
        --out data/k400/train_clean.txt

Prints each dropped video with its line number and reason, then
``checked N, unreadable U, too short S, kept K -> CLEAN_LIST``. Train on
CLEAN_LIST. The logic is :mod:`mmaction_tdx.datasets.video_checks`.
"""
import argparse
import sys
from multiprocessing import cpu_count

from mmaction_tdx.datasets.video_checks import PROBES, check_video_list


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check the videos of an MMAction2 video list '
        '(`path label` per line) and write a list without the bad ones.')
    parser.add_argument('ann_file', help='video list to check')
    parser.add_argument(
        '--data-prefix',
        default='',
        help='directory the paths of the list are relative to (the '
        "dataset's data_prefix.video)")
    parser.add_argument(
        '--min-frames',
        type=int,
        default=1,
        help='drop videos with fewer frames (default 1: keep every '
        'readable video; training repeats the last frame of short ones)')
    parser.add_argument(
        '--out', help='write the lines of the good videos to this file')
    parser.add_argument(
        '--nproc',
        type=int,
        default=max(cpu_count() - 1, 1),
        help='processes to check with (default: CPUs - 1)')
    parser.add_argument(
        '--decoder',
        default='decord',
        choices=sorted(PROBES),
        help='decoder to check with; use the one the pipeline uses')
    parser.add_argument(
        '--delimiter', default=' ', help='field delimiter of the list')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    report = check_video_list(
        args.ann_file,
        data_prefix=args.data_prefix,
        min_frames=args.min_frames,
        decoder=args.decoder,
        delimiter=args.delimiter,
        nproc=args.nproc,
        out=args.out)
    for lineno, check in report.problems:
        print(f'{check.status}: {args.ann_file}:{lineno}: {check.path}: '
              f'{check.reason}')
    print(report.summary())
    return 0


if __name__ == '__main__':
    sys.exit(main())
