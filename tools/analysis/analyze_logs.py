# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Plot training curves and iteration times of MMEngine json logs: the
command line of MMAction2's ``tools/analysis_tools/analyze_logs.py``, for
the logs MMEngine writes (``WORK_DIR/TIMESTAMP/vis_data/*.json``).

Examples::

    python tools/analysis/analyze_logs.py plot_curve \\
        work_dirs/tdrl/20240101_000000/vis_data/scalars.json \\
        --keys loss_cls loss_td --out tdrl_losses.png
    python tools/analysis/analyze_logs.py plot_curve A.json B.json \\
        --keys acc/top1 --legend tsm tdrl --out top1.png
    python tools/analysis/analyze_logs.py cal_train_time A.json

Training keys (``loss``, ``loss_cls``, ``loss_td``, ``lr``, ...) are
plotted per iteration, validation keys (``acc/top1``, ...) per epoch, one
panel per key.

A resumed run (``tools/train.py CONFIG --resume``) writes a new
``TIMESTAMP`` folder each time; the logs of one work dir are joined into
one curve (in time order; where they overlap, the later run wins, since
it continued from a checkpoint and its records replace the interrupted
tail). ``--legend`` then names one curve per work dir. A work dir itself
may be given instead of its logs (``plot_curve work_dirs/tdrl``);
``--separate`` keeps every log its own curve.

MMAction2 1.2.0's own script expects the 0.x log format and seaborn; see
:mod:`mmaction_tdx.visualization.training_curves`.
"""
import argparse
import glob
import json
import os.path as osp
import re
import sys
import tempfile
from collections import OrderedDict
from typing import Dict, List

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _quiet import quiet_upstream  # noqa: E402

#: MMEngine's run folder: WORK_DIR/TIMESTAMP/vis_data/*.json
_RUN_DIR = re.compile(r'^\d{8}_\d{6}$')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Analyze json logs')
    tasks = parser.add_subparsers(dest='task', required=True)
    plot = tasks.add_parser('plot_curve', help='plot curves of keys')
    plot.add_argument(
        'json_logs', nargs='+',
        help='MMEngine json logs (WORK_DIR/TIMESTAMP/vis_data/*.json) or '
        'work dirs')
    plot.add_argument(
        '--keys', nargs='+', default=['loss'],
        help='keys to plot, e.g. loss_cls loss_td acc/top1 (default: loss)')
    plot.add_argument('--title', help='title of the figure')
    plot.add_argument(
        '--legend', nargs='+', default=None,
        help='one name per curve (per work dir: a resumed run is one)')
    plot.add_argument(
        '--separate', action='store_true',
        help='one curve per log file, even for the parts of a resumed run')
    plot.add_argument(
        '--backend', default=None,
        help='accepted for compatibility; images are drawn with Agg')
    plot.add_argument(
        '--style', default=None, help='matplotlib style name')
    plot.add_argument(
        '--out', default=None,
        help='image to write (default: curves.png beside the first log)')
    times = tasks.add_parser(
        'cal_train_time', help='average time per training iteration')
    times.add_argument('json_logs', nargs='+', help='MMEngine json logs')
    times.add_argument(
        '--include-outliers', action='store_true',
        help='include the first iteration of every epoch')
    return parser.parse_args(argv)


def expand_paths(paths: List[str]) -> List[str]:
    """Json logs as given; a directory stands for the logs of its runs
    (``DIR/TIMESTAMP/vis_data/scalars.json`` or ``DIR/vis_data/...``)."""
    files = []
    for path in paths:
        if not osp.isdir(path):
            files.append(path)
            continue
        found = sorted(
            glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')) +
            glob.glob(osp.join(path, 'vis_data', 'scalars.json')))
        if not found:
            raise OSError(f'{path} is a directory without MMEngine logs '
                          '(TIMESTAMP/vis_data/scalars.json); pass the '
                          'work dir of a run or its json logs.')
        files.extend(found)
    return files


def run_of(path: str) -> str:
    """The work dir of ``WORK_DIR/TIMESTAMP/vis_data/X.json``; other paths
    are runs of their own."""
    vis_dir = osp.dirname(osp.abspath(path))
    run_dir = osp.dirname(vis_dir)
    if osp.basename(vis_dir) == 'vis_data' and _RUN_DIR.match(
            osp.basename(run_dir)):
        return osp.dirname(run_dir)
    return osp.abspath(path)


def group_runs(paths: List[str], separate: bool = False) -> Dict[str, list]:
    """``{name: [json logs in time order]}``: one entry per work dir (the
    parts of a resumed run), or per file with ``separate``."""
    groups = OrderedDict()
    for path in paths:
        key = path if separate else run_of(path)
        groups.setdefault(key, []).append(path)
    for key, parts in groups.items():
        # TIMESTAMP folders sort in time order; a file given twice counts
        # once.
        groups[key] = sorted(set(parts), key=lambda p: (
            osp.basename(osp.dirname(osp.dirname(osp.abspath(p)))), p))
    return groups


def _records(path: str) -> List[dict]:
    with open(path) as f:
        lines = [line.strip() for line in f]
    records = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}:{number} is not json: {err}.')
    return records


def join_records(parts: List[List[dict]]) -> List[dict]:
    """Records of a run's logs in time order, the later log winning where
    they overlap.

    A resumed run restarts at the iteration after its checkpoint, so the
    earlier log keeps its training records below the later log's first
    ``iter`` and its validation records (``step`` = epoch) before the
    later log's first training epoch (or first validated epoch).
    """
    joined = []
    for records in parts:
        train = [r for r in records if 'iter' in r]
        val = [r for r in records if 'iter' not in r and 'step' in r]
        if train:
            first_iter = min(r['iter'] for r in train)
            first_epoch = min(r.get('epoch', 1) for r in train)
        elif val:
            first_iter, first_epoch = None, min(r['step'] for r in val)
        else:
            continue
        kept = []
        for r in joined:
            if 'iter' in r:
                if first_iter is None or r['iter'] < first_iter:
                    kept.append(r)
            elif r['step'] < first_epoch:
                kept.append(r)
        joined = kept + records
    return joined


def load_run(name: str, parts: List[str], load_log):
    """One :class:`TrainingLog` of a run's json logs (see
    :func:`join_records`), named ``name``; a single log is read as it
    is."""
    if len(parts) == 1:
        return load_log(parts[0])
    records = join_records([_records(path) for path in parts])
    with tempfile.TemporaryDirectory() as tmp:
        joined = osp.join(tmp, 'joined.json')
        with open(joined, 'w') as f:
            f.writelines(json.dumps(r) + '\n' for r in records)
        log = load_log(joined)
    log.path = name
    return log


def main(argv=None) -> int:
    quiet_upstream()
    from mmaction_tdx.visualization.training_curves import (
        load_log,
        plot_curves,
        train_time_summary,
    )
    args = parse_args(argv)
    try:
        paths = expand_paths(args.json_logs)
        groups = group_runs(
            paths, separate=getattr(args, 'separate', False))
        logs = [load_run(name, parts, load_log)
                for name, parts in groups.items()]
        for name, parts, log in zip(groups, groups.values(), logs):
            if len(parts) > 1:
                print(f'{name}: {len(parts)} logs of a resumed run joined '
                      'into one curve')
        if args.task == 'plot_curve':
            out = args.out or osp.join(
                osp.dirname(paths[0]), 'curves.png')
            plot_curves(logs, args.keys, out, legend=args.legend,
                        title=args.title, style=args.style)
            print(f'save curve to: {out} ({", ".join(args.keys)} of '
                  f'{len(logs)} log(s))')
            return 0
        for log in logs:
            s = train_time_summary(log, args.include_outliers)
            print(f'-----Analyze train time of {log.path}-----')
            print(f'slowest epoch {s["slowest_epoch"]}, average time is '
                  f'{s["slowest_time"]:.4f}')
            print(f'fastest epoch {s["fastest_epoch"]}, average time is '
                  f'{s["fastest_time"]:.4f}')
            print(f'time std over epochs is {s["std_over_epochs"]:.4f}')
            print(f'average iter time: {s["mean_iter_time"]:.4f} s/iter')
    except (OSError, KeyError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
