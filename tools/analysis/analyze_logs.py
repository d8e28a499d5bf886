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
panel per key. MMAction2 1.2.0's own script expects the 0.x log format
and seaborn; see :mod:`mmaction_tdx.visualization.training_curves`.
"""
import argparse
import sys


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Analyze json logs')
    tasks = parser.add_subparsers(dest='task', required=True)
    plot = tasks.add_parser('plot_curve', help='plot curves of keys')
    plot.add_argument('json_logs', nargs='+', help='MMEngine json logs')
    plot.add_argument(
        '--keys', nargs='+', default=['loss'],
        help='keys to plot, e.g. loss_cls loss_td acc/top1 (default: loss)')
    plot.add_argument('--title', help='title of the figure')
    plot.add_argument(
        '--legend', nargs='+', default=None, help='one name per log')
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


def main(argv=None) -> int:
    import os.path as osp

    from mmaction_tdx.visualization.training_curves import (
        load_log,
        plot_curves,
        train_time_summary,
    )
    args = parse_args(argv)
    try:
        logs = [load_log(path) for path in args.json_logs]
        if args.task == 'plot_curve':
            out = args.out or osp.join(
                osp.dirname(args.json_logs[0]), 'curves.png')
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
