# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The quick-start job behind ``make demo``.

1. Generates the synthetic motion dataset (``data/synthetic_motion``; kept if
   it already matches).
2. Trains the four quick-start models (TSN, TSM, TDN, TDRL in
   ``configs/quickstart/``) on the CPU with ``tools/train.py``, printing one
   line per epoch (loss, training accuracy, ETA), and tests each last
   checkpoint with an MMEngine ``Runner`` in this process: the metrics are
   ``runner.test()``'s, from the configs' ``test_evaluator``
   (``AccMetric`` and :class:`~mmaction_tdx.evaluation.DirectionAccuracy`).
3. Prints one table: top-1 / top-5 over all classes, the accuracy of telling
   the *kind* of motion apart (which reversal pair), and the accuracy of the
   *direction* within the right pair, where a frame-order-blind model stays
   at 50 % by construction, with its 95 % interval (or mean +- std over
   ``--seeds``); then one line saying what to conclude.
4. Writes ``WORK_DIR/quickstart_results.png``: direction accuracy per model
   and reversal pair, and the training curves.

Example::

    python tools/run_quickstart.py                  # make demo
    python tools/run_quickstart.py --models tsn tdn --epochs 2
    python tools/run_quickstart.py --seeds 0 1 2    # mean +- std
    # the pictures of docs/quickstart_results.md, from the trained models:
    python tools/run_quickstart.py --reuse --figures-dir docs/_static
"""
import argparse
import contextlib
import datetime
import glob
import json
import logging
import os
import os.path as osp
import subprocess
import sys
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
# tools/_quiet.py, also when this file is loaded by path (tests).
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _quiet import quiet_upstream  # noqa: E402

quiet_upstream()

from mmaction_tdx.datasets.synthetic_motion import (  # noqa: E402
    MOTION_PAIRS,
    SyntheticMotionSpec,
    generate,
)

DATA_ROOT = osp.join('data', 'synthetic_motion')
# The dataset the quick-start configs are designed for (on its 'tune'
# split and training accuracy; the validation split only reports).
DEMO_SPEC = dict(
    num_train_per_class=25, num_val_per_class=10, frames=24, size=64)
# make demo's models, in table order; other configs of configs/quickstart
# (tdn-td, for the mini-reproduction) run only when named in --models.
DEFAULT_MODELS = ('tsn', 'tsm', 'tdn', 'tdrl')
PAIR_NAMES = [f'{a} / {b}' for a, b in MOTION_PAIRS]
SHORT_PAIR_NAMES = ('right/left', 'down/up', 'approach/recede', 'cw/acw',
                    'appear/vanish')
# tools/_quickstart_progress.py, imported by the training process (MMEngine
# builds a `module.Class` type by importing it; tools/ is on its sys.path).
PROGRESS_HOOK = '_quickstart_progress.EpochProgressHook'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--models',
        nargs='+',
        help='quick-start model names (the config name up to the first '
        f'"_") to run; default: {" ".join(DEFAULT_MODELS)}')
    parser.add_argument(
        '--epochs', type=int, help='override the configs\' max_epochs '
        '(the lr schedule follows it)')
    parser.add_argument('--work-dir', default='work_dirs/quickstart')
    parser.add_argument('--data-root', default=DATA_ROOT)
    parser.add_argument(
        '--seeds', type=int, nargs='+', default=[0],
        help='training seeds; with several the table shows mean +- std')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the generated dataset')
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
    parser.add_argument(
        '--reuse', action='store_true',
        help='do not train a model whose predictions are already in '
        'WORK_DIR (to redraw the figures)')
    parser.add_argument(
        '--figures-dir',
        help='also write the docs\' pictures here: the results chart, the '
        'training curves and Grad-CAM of TDN beside TSN on a validation clip')
    return parser.parse_args(argv)


def model_name(config: str) -> str:
    return osp.basename(config).split('_')[0]


def quickstart_configs(names=None):
    configs = sorted(
        glob.glob(osp.join(ROOT, 'configs', 'quickstart', '*.py')))
    wanted = [n.lower() for n in (names or DEFAULT_MODELS)]
    unknown = set(wanted) - {model_name(c) for c in configs}
    if unknown:
        raise SystemExit(
            f'no quick-start config for {sorted(unknown)}; choose from '
            f'{sorted(model_name(c) for c in configs)}')
    return sorted((c for c in configs if model_name(c) in wanted),
                  key=lambda c: wanted.index(model_name(c)))


def config_overrides(data_root: str, epochs: int = None) -> dict:
    """The quick start's changes to a config: its data and, with
    ``epochs``, the training length (the schedule is written relative to
    ``max_epochs``; validation runs after the last epoch)."""
    overrides = {}
    for split, loader in (('train', 'train_dataloader'),
                          ('val', 'val_dataloader'), ('val',
                                                      'test_dataloader')):
        overrides[f'{loader}.dataset.ann_file'] = \
            f'{data_root}/{split}_list.txt'
        overrides[f'{loader}.dataset.data_prefix.video'] = \
            f'{data_root}/videos'
    if epochs:
        overrides['train_cfg.max_epochs'] = epochs
        overrides['train_cfg.val_interval'] = epochs
    return overrides


def as_cfg_options(overrides: dict) -> list:
    """``overrides`` as ``--cfg-options`` arguments."""
    return [f'{key}={value}' for key, value in overrides.items()]


def run(cmd: list, log_path: str, progress=None) -> None:
    """Run ``cmd``, its output into ``log_path``. With ``progress`` (an
    :class:`EpochProgress`), the command inherits its pipe, and it shows
    each message that comes down the pipe until the command ends."""
    try:
        with open(log_path, 'w') as log:
            process = subprocess.Popen(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=progress.pass_fds if progress else ())
            if progress is not None:
                progress.follow()
            returncode = process.wait()
    finally:
        if progress is not None:
            progress.close()
    if returncode != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-30:])
        raise RuntimeError(f'command failed ({" ".join(cmd)}); last lines '
                           f'of {log_path}:\n{tail}')


class EpochProgress:
    """Prints one line per finished epoch of a ``tools/train.py`` run: loss
    and training accuracy averaged over the epoch's iterations, time, ETA.

    The figures are the runner's own: the run gets
    :attr:`cfg_options`, which add ``_quickstart_progress``'s
    ``EpochProgressHook`` writing to this object's pipe (no log text is
    read). Use with :func:`run`, which passes the pipe on and calls
    :meth:`follow`.
    """

    def __init__(self, title: str, runs_left: int):
        self.title = title
        self.runs_left = runs_left  # runs after this one
        self.began = time.time()
        self._read_fd, self._write_fd = os.pipe()

    @property
    def cfg_options(self) -> dict:
        """The ``--cfg-options`` that add the hook (a default hook: the
        config's own hooks stay)."""
        return {
            'default_hooks.progress.type': PROGRESS_HOOK,
            'default_hooks.progress.fd': self._write_fd,
        }

    @property
    def pass_fds(self) -> tuple:
        """The descriptor the training process must inherit."""
        return () if self._write_fd is None else (self._write_fd, )

    def follow(self) -> None:
        """Print a line per message until the training process (and its
        data loader workers) closed the pipe."""
        # Ours closed, the pipe ends when the last writer exits.
        os.close(self._write_fd)
        self._write_fd = None
        with os.fdopen(self._read_fd) as messages:
            self._read_fd = None
            for message in messages:
                print(self.line(json.loads(message)), flush=True)

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            if fd is not None:
                os.close(fd)
        self._read_fd = self._write_fd = None

    def line(self, message: dict) -> str:
        """The line of one ``EpochProgressHook`` message."""
        text = (f'    {self.title} epoch {message["epoch"]}/'
                f'{message["max_epochs"]}:')
        if message.get('loss') is not None:
            text += f' loss {message["loss"]:.3f},'
        if message.get('top1_acc') is not None:
            text += f' train acc {message["top1_acc"]:.0%},'
        eta = message.get('eta_s')
        eta = '?' if eta is None else datetime.timedelta(seconds=round(eta))
        text += f' {time.time() - self.began:.0f} s, ETA {eta}'
        if self.runs_left:
            text += f' (+{self.runs_left} more run(s))'
        return text


def score_checkpoint(config: str, checkpoint: str, overrides: dict,
                     work_dir: str) -> dict:
    """Test ``checkpoint`` with an MMEngine ``Runner``; the metrics are
    ``runner.test()``'s (the config's ``test_evaluator``: ``AccMetric``
    and ``DirectionAccuracy``)."""
    # The runner's output (and upstream's warnings) go to WORK_DIR/test.log,
    # as the training's go to train.log.
    with open(osp.join(work_dir, 'test.log'), 'w') as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        from mmengine.config import Config
        from mmengine.runner import Runner
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(overrides)
        # Its own folder: WORK_DIR/<timestamp>/vis_data stays the training's.
        cfg.work_dir = osp.join(work_dir, 'test')
        cfg.experiment_name = f'{osp.basename(work_dir)}_{time.time():.0f}'
        cfg.load_from = checkpoint
        cfg.launcher = 'none'
        cfg.log_level = 'WARNING'
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
        # MMEngine keeps a logger per run name; close this run's handlers.
        for handler in list(runner.logger.handlers):
            handler.flush()
            if isinstance(handler, logging.FileHandler):
                handler.close()
            runner.logger.removeHandler(handler)
    return dict(metrics, clips=len(runner.test_dataloader.dataset))


def summarise(metrics: dict) -> dict:
    """The table's figures from the test metrics (MMEngine's keys)."""
    return dict(
        top1=metrics['acc/top1'],
        top5=metrics['acc/top5'],
        pair=metrics['direction/kind_acc'],
        direction=metrics['direction/acc'],
        direction_n=int(metrics['direction/num_clips']),
        per_pair=[
            metrics[f'direction/pair{j}_acc']
            for j in range(len(MOTION_PAIRS))
        ],
        clips=int(metrics['clips']))


def wilson(p: float, n: int, z: float = 1.96):
    """95 % Wilson interval of a proportion ``p`` of ``n`` trials."""
    if n == 0 or p != p:
        return float('nan'), float('nan')
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def latest_scalars(work_dir: str):
    """The newest MMEngine ``vis_data/scalars.json`` of a work dir."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    return paths[-1] if paths else None


def train_and_test(config, seed, args, runs_left):
    name = osp.splitext(osp.basename(config))[0]
    work_dir = osp.join(args.work_dir, name)
    if len(args.seeds) > 1:
        work_dir = osp.join(work_dir, f'seed{seed}')
    os.makedirs(work_dir, exist_ok=True)
    saved = osp.join(work_dir, 'test_metrics.json')
    timing = osp.join(work_dir, 'train_seconds.json')
    title = model_name(config).upper()
    if len(args.seeds) > 1:
        title += f' seed {seed}'
    if args.reuse and osp.isfile(saved) and osp.isfile(timing):
        print(f'    {title}: reusing {saved}', flush=True)
        with open(timing) as f:
            train_time = json.load(f)['train_s']
        with open(saved) as f:
            metrics = json.load(f)
    else:
        overrides = config_overrides(args.data_root, args.epochs)
        began = time.time()
        progress = EpochProgress(title, runs_left)
        run([
            sys.executable, 'tools/train.py', config, '--work-dir', work_dir,
            '--seed', str(seed), '--cfg-options',
            *as_cfg_options({**overrides, **progress.cfg_options})
        ], osp.join(work_dir, 'train.log'), progress)
        train_time = time.time() - began
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        metrics = score_checkpoint(config, checkpoint, overrides, work_dir)
        with open(saved, 'w') as f:
            json.dump(metrics, f, indent=1)
        with open(timing, 'w') as f:
            json.dump(dict(train_s=train_time), f)
    return dict(train_s=train_time, work_dir=work_dir,
                scalars=latest_scalars(work_dir), **summarise(metrics))


def combine(model, config, runs):
    """One table row from the runs (seeds) of a model."""
    row = dict(model=model, config=osp.splitext(osp.basename(config))[0],
               runs=runs, clips=runs[0]['clips'])
    for key in ('top1', 'top5', 'pair', 'direction', 'train_s'):
        values = np.array([r[key] for r in runs], dtype=float)
        row[key] = float(np.nanmean(values))
        row[key + '_std'] = float(np.std(values, ddof=1)) \
            if len(values) > 1 else float('nan')
    row['per_pair'] = np.nanmean([r['per_pair'] for r in runs], axis=0)
    return row


def spread(row) -> str:
    """The direction column's uncertainty: std over seeds, else the 95 %
    interval of the single run."""
    if len(row['runs']) > 1:
        return f'+-{100 * row["direction_std"]:.1f}'
    low, high = wilson(row['direction'], row['runs'][0]['direction_n'])
    return f'[{100 * low:.0f}-{100 * high:.0f}]'


def conclusion(rows) -> str:
    """One line: which models tell a clip from its reversal."""
    def above_chance(row):
        if len(row['runs']) > 1:
            return row['direction'] - 2 * row['direction_std'] > 0.5
        return wilson(row['direction'], row['runs'][0]['direction_n'])[0] \
            > 0.5
    temporal = [r['model'] for r in rows if above_chance(r)]
    blind = [r['model'] for r in rows if not above_chance(r)]
    text = 'Conclusion: '
    if temporal:
        verb = 'tells' if len(temporal) == 1 else 'tell'
        text += (f'{", ".join(temporal)} {verb} a motion from its reversal '
                 '(direction above chance): frame order is modelled')
    if blind:
        text += ('; ' if temporal else '') + (
            f'{", ".join(blind)} cannot (direction at chance)')
        if 'TSN' in blind:
            text += (', as TSN must: it averages frames, and a clip and '
                     'its reversal have the same frames')
    return text + '.'


def print_table(rows, seeds):
    spread_title = 'std' if len(seeds) > 1 else '95% CI'
    print('[3/3] results on the validation split '
          f'({rows[0]["clips"]} clips, 10 classes; chance: top-1 10 %, '
          'direction 50 %)' + (f', mean over seeds {seeds}'
                               if len(seeds) > 1 else '') + '\n')
    header = (f'{"model":<6} {"top-1":>7} {"top-5":>7} {"motion kind":>12} '
              f'{"direction":>10} {spread_title:>9} {"train s":>8}  config')
    print(header)
    print('-' * len(header))
    for row in rows:
        print(f'{row["model"]:<6} {row["top1"]:>7.1%} {row["top5"]:>7.1%} '
              f'{row["pair"]:>12.1%} {row["direction"]:>10.1%} '
              f'{spread(row):>9} {row["train_s"]:>8.0f}  {row["config"]}')
    print(f'\ndirection per reversal pair (%, {" ".join(SHORT_PAIR_NAMES)}):')
    for row in rows:
        print(f'  {row["model"]:<6} ' + ' '.join(
            f'{"-" if v != v else f"{100 * v:.0f}":>{len(name)}}'
            for v, name in zip(row['per_pair'], SHORT_PAIR_NAMES)))
    print(conclusion(rows))


def plot_results(rows, out: str) -> str:
    """Direction accuracy per model and reversal pair, and the training
    loss / accuracy curves of every model, in one PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmaction_tdx.visualization import load_log
    fig, axes = plt.subplots(
        1, 3, figsize=(16, 3.8), gridspec_kw=dict(width_ratios=(1.7, 1, 1)))
    ax = axes[0]
    width = 0.8 / len(rows)
    labels = [*SHORT_PAIR_NAMES, 'direction\n(all)', 'top-1\n(10 classes)']
    x = np.arange(len(labels))
    for i, row in enumerate(rows):
        values = [*row['per_pair'], row['direction'], row['top1']]
        ax.bar(x + (i - (len(rows) - 1) / 2) * width,
               [100 * v for v in values], width, label=row['model'])
    ax.axhline(50, color='grey', linestyle=':', linewidth=1)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0, 105)
    ax.set_ylabel('accuracy (%)')
    ax.set_title('Direction within each reversal pair (chance 50 %), '
                 'top-1', fontsize=9)
    ax.legend(fontsize=7, ncol=len(rows))
    for ax, key, title in ((axes[1], 'loss', 'training loss'),
                           (axes[2], 'top1_acc', 'training accuracy')):
        for row in rows:
            for n, run in enumerate(row['runs']):
                if not run['scalars']:
                    continue
                log = load_log(run['scalars'])
                if key not in log.train:
                    continue
                iters, values = log.train[key]
                epochs = np.asarray(log.epochs, dtype=float)
                per_epoch = iters / max(iters.max(), 1) * epochs.max()
                line, = ax.plot(per_epoch, values, linewidth=1,
                                label=row['model'] if n == 0 else None,
                                color=f'C{rows.index(row)}')
        ax.set_xlabel('epoch')
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def grad_cam_figure(rows, args, out: str) -> str:
    """Grad-CAM of TDN beside TSN on one validation clip (vis_cam.py)."""
    by_model = {row['model']: row for row in rows}
    if not {'TSN', 'TDN'} <= set(by_model):
        raise SystemExit('--figures-dir needs the TSN and TDN models')
    with open(osp.join(args.data_root, 'val_list.txt')) as f:
        # a clip of "moving right": its motion is easy to see in the map
        video = osp.join(args.data_root, 'videos', f.readline().split()[0])

    def model_args(model):
        work_dir = by_model[model]['runs'][0]['work_dir']
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        config = osp.join(ROOT, 'configs', 'quickstart',
                          by_model[model]['config'] + '.py')
        return config, checkpoint

    sys.path.insert(0, osp.join(ROOT, 'tools', 'visualizations'))
    import vis_cam
    tsn_config, tsn_checkpoint = model_args('TSN')
    tdn_config, tdn_checkpoint = model_args('TDN')
    code = vis_cam.main([
        tdn_config, tdn_checkpoint, video, '--compare', 'TSN', tsn_config,
        tsn_checkpoint, '--label-map',
        osp.join(args.data_root, 'label_map.txt'), '--target-layer-name',
        'backbone/layer3', '--out-filename', out
    ])
    if code:
        raise SystemExit('vis_cam.py failed (see above)')
    return out


def main(argv=None):
    args = parse_args(argv)
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
    total = len(configs) * len(args.seeds)
    rows, done = [], 0
    for config in configs:
        model = model_name(config).upper()
        runs = []
        for seed in args.seeds:
            done += 1
            print(f'[2/3] ({done}/{total}) training {model}'
                  + (f' seed {seed}' if len(args.seeds) > 1 else '')
                  + f' ({osp.basename(config)})', flush=True)
            runs.append(train_and_test(config, seed, args, total - done))
        rows.append(combine(model, config, runs))
    print_table(rows, args.seeds)
    os.makedirs(args.work_dir, exist_ok=True)
    png = plot_results(rows, osp.join(args.work_dir,
                                      'quickstart_results.png'))
    print(f'\nchart and training curves: {png}')
    if args.figures_dir:
        os.makedirs(args.figures_dir, exist_ok=True)
        plot_results(rows, osp.join(args.figures_dir,
                                    'quickstart_results.png'))
        cam = grad_cam_figure(
            rows, args, osp.join(args.figures_dir, 'quickstart_gradcam.png'))
        print(f'docs pictures: {args.figures_dir}/quickstart_results.png, '
              f'{cam}')
    print(f'\nquick start finished: {len(rows)} models in '
          f'{time.time() - start:.0f} s; logs and checkpoints in '
          f'{args.work_dir}/')


if __name__ == '__main__':
    main()
