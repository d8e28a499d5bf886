# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Find unreadable and too short videos of a video or rawframe list; write
a clean list.

Example::

    python tools/analysis/check_videos.py data/k400/train.txt \\
        --data-prefix data/k400/videos --min-frames 8 --nproc 8 \\
        --out data/k400/train_clean.txt
    python tools/analysis/check_videos.py \\
        data/sthv1/sthv1_train_list_rawframes.txt --rawframes \\
        --data-prefix data/sthv1/rawframes --filename-tmpl '{:05}.jpg' \\
        --out data/sthv1/train_clean.txt

Prints each dropped entry with its line number and reason, then
``checked N, unreadable U, too short S, kept K -> CLEAN_LIST``. Train on
CLEAN_LIST. A video is checked with the decode transforms of the training
pipeline (``--decoder decord``: ``DecordInit`` + ``DecordDecode``), and
what counts as broken is what the robust datasets skip; a named pipe or
other special file is refused without being opened. Each file is checked in
a worker process with a time limit (``--timeout``), so a file the decoder
hangs on is reported, not waited for. The logic is
:mod:`mmaction_tdx.datasets.video_checks`.
"""
import argparse
import sys
from multiprocessing import cpu_count

from mmaction_tdx.datasets.video_checks import (
    PROBES,
    check_rawframe_list,
    check_video_list,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check the videos of an MMAction2 video list (`path '
        'label` per line), or the frame folders of a rawframe list '
        '(`frame_dir total_frames label`), and write a list without the '
        'bad ones.')
    parser.add_argument('ann_file', help='list to check')
    parser.add_argument(
        '--data-prefix',
        default='',
        help='directory the paths of the list are relative to (the '
        "dataset's data_prefix.video, or data_prefix.img for rawframes)")
    parser.add_argument(
        '--min-frames',
        type=int,
        default=1,
        help='drop entries with fewer frames (default 1: keep every '
        'readable one; training repeats the last frame of short ones)')
    parser.add_argument(
        '--out', help='write the lines of the good entries to this file')
    parser.add_argument(
        '--nproc',
        type=int,
        default=max(cpu_count() - 1, 1),
        help='processes to check with (default: CPUs - 1)')
    parser.add_argument(
        '--timeout',
        type=float,
        default=60,
        help='seconds one file may take before it is reported as '
        'unreadable (default 60; 0: no limit)')
    parser.add_argument(
        '--decoder',
        default='decord',
        choices=sorted(PROBES),
        help='decoder to check videos with, as the pipeline decodes: '
        'decord (DecordInit + DecordDecode) or opencv (OpenCVInit + '
        'OpenCVDecode)')
    parser.add_argument(
        '--delimiter', default=' ', help='field delimiter of a video list')
    rawframes = parser.add_argument_group(
        'rawframe lists', 'as the RawframeDataset of the config reads them')
    rawframes.add_argument(
        '--rawframes',
        action='store_true',
        help='the list is a rawframe list: check that every listed frame '
        'exists and that the first, middle and last decode')
    rawframes.add_argument(
        '--filename-tmpl',
        default='img_{:05}.jpg',
        help="the dataset's filename_tmpl (default img_{:05}.jpg; the "
        "Something-Something V1 configs use '{:05}.jpg')")
    rawframes.add_argument(
        '--start-index',
        type=int,
        default=1,
        help="the dataset's start_index (default 1)")
    rawframes.add_argument(
        '--with-offset',
        action='store_true',
        help='lines are `frame_dir offset total_frames label`')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    common = dict(
        data_prefix=args.data_prefix,
        min_frames=args.min_frames,
        nproc=args.nproc,
        out=args.out,
        timeout=args.timeout)
    if args.rawframes:
        report = check_rawframe_list(
            args.ann_file,
            filename_tmpl=args.filename_tmpl,
            start_index=args.start_index,
            with_offset=args.with_offset,
            **common)
    else:
        report = check_video_list(
            args.ann_file,
            decoder=args.decoder,
            delimiter=args.delimiter,
            **common)
    for lineno, check in report.problems:
        print(f'{check.status}: {args.ann_file}:{lineno}: {check.path}: '
              f'{check.reason}')
    print(report.summary())
    return 0


if __name__ == '__main__':
    sys.exit(main())
