# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""A seeded mini-reproduction of the TDN and TDRL ablations on the
synthetic motion dataset of the quick start (``make demo``).

Rows (each trained from scratch with the quick-start recipe, once per
seed, then scored on the validation split):

* TDN Table 1(e): no TDM (temporal convs only), S-TDM only, L-TDM only,
  both (TDN);
* TDN Table 1(a): the temporal operator, difference (TDN) vs averaging
  (S-TDM on stacked frames, L-TDM with ``temporal_operator='average'``);
* TDRL Tables 3-4: TIM baseline (no PEM, no TD loss), + PEM, + TD loss,
  both (TDRL);
* neither paper: TDN vs TDN + TD loss (``ResNetTDN.td_blocks`` read by
  ``TSNTDHead.loss_td``, as for TDRL), and MMAction2's TSM vs TSM + TD loss
  (``ResNetTSMTD``).

Every run is an MMEngine ``Runner`` built in this process from a
quick-start config plus the row's overrides, so a row differs from its
neighbours only by the option under study; the frames per segment follow
the row's backbone through the sampling contract
(:mod:`mmaction_tdx.datasets.sampling_contract`), and the figures are
``runner.test()``'s metrics from the configs' ``test_evaluator``
(``AccMetric``, ``DirectionAccuracy``). The table (mean +- std over
seeds of top-1 and of the direction accuracy within the right reversal
pair) goes to ``WORK_DIR/mini_reproduction.{md,json,png}``.

Example::

    python tools/analysis/mini_reproduction.py            # ~1 h, 2 cores
    python tools/analysis/mini_reproduction.py --rows tdrl --seeds 0
    python tools/analysis/mini_reproduction.py --smoke    # 1 tiny epoch
"""
import argparse
import copy
import json
import logging
import os
import os.path as osp
import platform
import sys
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools'))

QUICKSTART = osp.join(ROOT, 'configs', 'quickstart')
TDN = osp.join(QUICKSTART, 'tdn_r18_1xb16-5x1x4-12e_synthetic-motion-rgb.py')
TDRL = osp.join(QUICKSTART, 'tdrl_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py')
TDN_TD = osp.join(QUICKSTART,
                  'tdn-td_r18_1xb16-5x1x4-12e_synthetic-motion-rgb.py')
TSM = osp.join(QUICKSTART, 'tsm_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py')
TSM_TD = osp.join(QUICKSTART,
                  'tsm-td_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py')
NO_STDM = dict(short_term_tdm=None)
NO_LTDM = dict(long_term_tdm=None)
NO_TD = dict(td_blocks=((), (), (), ()))

# (group, row name, config, backbone overrides, head overrides). The
# pipelines sample the frames per segment the row's backbone reads (the
# sampling contract): 1 where no S-TDM reads frame differences (as the
# paper's 1x1x8 configs of those rows), 5 with one.
ROWS = (
    ('tdn-1e', 'no TDM (temporal conv)', TDN, {**NO_STDM, **NO_LTDM}, {}),
    ('tdn-1e', 'S-TDM only', TDN, NO_LTDM, {}),
    ('tdn-1e', 'L-TDM only', TDN, NO_STDM, {}),
    ('tdn-1e', 'S-TDM + L-TDM (TDN)', TDN, {}, {}),
    ('tdn-1a', 'averaging', TDN,
     dict(short_term_tdm=dict(type='ShortTermTDM', input_mode='frames'),
          long_term_tdm=dict(type='LongTermTDM',
                             temporal_operator='average')), {}),
    ('tdn-1a', 'difference (TDN)', TDN, {}, {}),
    ('tdrl', 'TIM (TSM init)', TDRL,
     dict(enhancement_module=None, **NO_TD), dict(loss_td=None)),
    ('tdrl', '+ PEM', TDRL, NO_TD, dict(loss_td=None)),
    ('tdrl', '+ TD loss', TDRL, dict(enhancement_module=None), {}),
    ('tdrl', '+ PEM + TD loss (TDRL)', TDRL, {}, {}),
    ('tdn-td', 'TDN', TDN, {}, {}),
    ('tdn-td', 'TDN + TD loss', TDN_TD, {}, {}),
    ('tsm-td', 'TSM', TSM, {}, {}),
    ('tsm-td', 'TSM + TD loss', TSM_TD, {}, {}),
)
GROUPS = {
    'tdn-1e': 'TDN Table 1(e): temporal difference modules',
    'tdn-1a': 'TDN Table 1(a): temporal operator',
    'tdrl': 'TDRL: PEM and TD loss',
    'tdn-td': 'Neither paper: TD loss on TDN',
    'tsm-td': 'Neither paper: TD loss on TSM',
}
# What each paper reports (higher is better), to read the table against.
PAPER_ORDER = {
    'tdn-1e': 'no TDM < S-TDM only, L-TDM only < both',
    'tdn-1a': 'averaging < difference',
    'tdrl': 'TIM < + PEM, + TD loss < both',
    'tdn-td': '(not reported)',
    'tsm-td': '(not reported)',
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--rows', nargs='+', choices=sorted(GROUPS), default=sorted(GROUPS),
        help='groups of rows to run (default: all)')
    parser.add_argument(
        '--epochs', type=int, default=10,
        help='epochs per run (the quick-start schedule of 12, shortened '
        'to fit 30 runs in about an hour on 2 cores)')
    parser.add_argument(
        '--train-per-class', type=int, default=25,
        help='training clips per class: the first N of each class of the '
        'quick-start training split')
    parser.add_argument('--work-dir', default='work_dirs/mini_reproduction')
    parser.add_argument(
        '--data-root',
        help='the quick-start dataset, generated if missing (default: '
        'data/synthetic_motion; with --smoke a tiny one in WORK_DIR)')
    parser.add_argument(
        '--smoke', action='store_true',
        help='one tiny epoch on 1 clip per class, one seed, to check that '
        'every row builds and trains (its figures mean nothing)')
    return parser.parse_args(argv)


def unique_rows(groups):
    """Rows of ``groups``; a row shared by two groups (TDN) runs once."""
    seen, rows = {}, []
    for row in ROWS:
        if row[0] not in groups:
            continue
        key = (row[2], repr(row[3]), repr(row[4]))
        seen.setdefault(key, len(seen))
        rows.append((seen[key], row))
    return rows


def subset_train_list(args):
    """The first ``--train-per-class`` clips of every class of the
    quick-start training list, as a list file in the work dir."""
    with open(osp.join(args.data_root, 'train_list.txt')) as f:
        lines = [line.split() for line in f if line.strip()]
    kept, counts = [], {}
    for rel, label in lines:
        counts[label] = counts.get(label, 0) + 1
        if counts[label] <= args.train_per_class:
            kept.append(f'{rel} {label}')
    path = osp.join(args.work_dir, 'train_list.txt')
    with open(path, 'w') as f:
        f.write('\n'.join(kept) + '\n')
    return path


def build_config(row, seed, args, work_dir):
    from mmengine.config import Config

    from mmaction_tdx.datasets.sampling_contract import (
        SAMPLERS,
        backbone_sampling,
        check_sampling,
    )
    _, _, config, backbone, head = row
    cfg = Config.fromfile(config)
    cfg.model.backbone.update(copy.deepcopy(backbone))
    cfg.model.cls_head.update(copy.deepcopy(head))
    # The frames per segment the row's backbone reads (e.g. 1 once the
    # S-TDM is off), from the one sampling contract.
    clip_len = backbone_sampling(cfg.model).frames_per_segment
    for loader in ('train_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        split = 'train' if loader == 'train_dataloader' else 'val'
        dataset.ann_file = args.train_list if split == 'train' else \
            osp.join(args.data_root, 'val_list.txt')
        dataset.data_prefix = dict(video=osp.join(args.data_root, 'videos'))
        for step in dataset.pipeline:
            if step['type'] in SAMPLERS:
                step['clip_len'] = clip_len
        cfg[loader].persistent_workers = False
        if args.smoke:
            cfg[loader].num_workers = 0
    # The quick-start schedule (warm-up epoch, cosine to the end) is
    # written relative to max_epochs: it follows.
    cfg.train_cfg.max_epochs = 1 if args.smoke else args.epochs
    cfg.train_cfg.val_interval = 10**6  # tested below, on the test split
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10**6)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.work_dir = work_dir
    cfg.experiment_name = osp.basename(work_dir)
    cfg.launcher = 'none'
    check_sampling(cfg)
    return cfg


def train_one(row, seed, args):
    """Train a row's model and test it: ``runner.test()``'s metrics (the
    config's test_evaluator: ``acc/top1``, ``direction/acc``, ...)."""
    from mmengine.runner import Runner
    slug = f'{row[0]}-{row[1]}'.lower()
    slug = ''.join(c if c.isalnum() else '-' for c in slug).strip('-')
    work_dir = osp.join(args.work_dir, f'{slug}-seed{seed}')
    cfg = build_config(row, seed, args, work_dir)
    began = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    result = dict(top1=float(metrics['acc/top1']),
                  direction=float(metrics['direction/acc']),
                  clips=len(runner.test_dataloader.dataset),
                  seconds=time.time() - began)
    # MMEngine keeps a logger per run name; close this run's file.
    for handler in list(runner.logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            runner.logger.removeHandler(handler)
    return result


def ensure_data(args):
    from run_quickstart import DEMO_SPEC

    from mmaction_tdx.datasets.synthetic_motion import (
        SyntheticMotionSpec,
        generate,
    )
    spec = dict(DEMO_SPEC)
    if args.smoke:
        spec.update(num_train_per_class=1, num_val_per_class=1)
    generate(SyntheticMotionSpec(root=args.data_root, **spec),
             show_progress=False)


def mean_std(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) \
        if len(values) > 1 else 0.0


def table(results, seeds):
    lines = []
    for group in GROUPS:
        rows = [r for r in results if r['group'] == group]
        if not rows:
            continue
        lines += ['', f'**{GROUPS[group]}** (papers: '
                  f'{PAPER_ORDER[group]})', '',
                  '| row | top-1 (%) | direction (%) | per seed top-1 |',
                  '|---|---|---|---|']
        for r in rows:
            t_mean, t_std = mean_std(r['top1'])
            d_mean, d_std = mean_std(r['direction'])
            seeds_text = ' / '.join(f'{100 * v:.0f}' for v in r['top1'])
            lines.append(f'| {r["row"]} | {100 * t_mean:.1f} +- '
                         f'{100 * t_std:.1f} | {100 * d_mean:.1f} +- '
                         f'{100 * d_std:.1f} | {seeds_text} |')
    head = (f'Mean +- std over seeds {", ".join(map(str, seeds))} '
            '(std with ddof=1); validation split of the quick-start '
            'synthetic dataset; chance: top-1 10 %, direction 50 %.')
    return '\n'.join([head] + lines) + '\n'


def plot(results, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    groups = [g for g in GROUPS if any(r['group'] == g for r in results)]
    fig, axes = plt.subplots(
        1, len(groups), figsize=(3.3 * len(groups), 3.6), squeeze=False)
    for ax, group in zip(axes[0], groups):
        rows = [r for r in results if r['group'] == group]
        x = np.arange(len(rows))
        for offset, key, colour in ((-0.2, 'top1', 'tab:blue'),
                                    (0.2, 'direction', 'tab:orange')):
            stats = [mean_std(r[key]) for r in rows]
            ax.bar(x + offset, [100 * m for m, _ in stats], 0.4,
                   yerr=[100 * s for _, s in stats], color=colour,
                   capsize=3, label=key)
            for i, r in enumerate(rows):  # every seed, as a dot
                ax.plot([x[i] + offset] * len(r[key]),
                        [100 * v for v in r[key]], 'k.', markersize=3)
        ax.axhline(50, color='grey', linewidth=0.8, linestyle=':')
        ax.set_xticks(x, [r['row'].replace(' (', '\n(') for r in rows],
                      rotation=35, ha='right', fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_title(GROUPS[group].split(':')[0], fontsize=9)
        ax.grid(axis='y', alpha=0.3)
    axes[0][0].set_ylabel('accuracy (%), mean +- std')
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def collect(rows, cache, seeds):
    """Table rows from the finished runs (a seed still running is left
    out of every row, so that all rows average the same seeds)."""
    done_seeds = [seed for seed in seeds
                  if all((index, seed) in cache for index, _ in rows)]
    results = []
    for index, row in rows:
        per_seed = [cache[(index, seed)] for seed in done_seeds]
        results.append(dict(
            group=row[0], row=row[1],
            top1=[r['top1'] for r in per_seed],
            direction=[r['direction'] for r in per_seed],
            seconds=[r['seconds'] for r in per_seed]))
    return results, done_seeds


def write_outputs(rows, cache, args, wall, machine, final):
    results, seeds = collect(rows, cache, args.seeds)
    if not seeds:
        return None
    text = table(results, seeds)
    runs = len(cache)
    text += (f'\nWall time {wall / 60:.1f} min for {runs} runs on '
             f'{machine}; {len(rows)} rows, {args.epochs_used} epoch(s) on '
             f'{args.train_per_class} training clips per class.\n')
    if not final:
        text += '\n(partial: the run is still going)\n'
    stem = osp.join(args.work_dir, 'mini_reproduction')
    with open(stem + '.md', 'w') as f:
        f.write(text)
    with open(stem + '.json', 'w') as f:
        json.dump(dict(results=results, seeds=seeds, wall_s=wall,
                       machine=machine, smoke=args.smoke,
                       epochs=args.epochs_used,
                       train_per_class=args.train_per_class,
                       final=final), f, indent=1)
    plot(results, stem + '.png')
    return text, stem


def main(argv=None):
    args = parse_args(argv)
    import torch

    import mmaction_tdx  # noqa: F401
    if args.smoke:
        args.seeds = args.seeds[:1]
    if args.data_root is None:
        args.data_root = osp.join(args.work_dir, 'smoke_data') \
            if args.smoke else osp.join('data', 'synthetic_motion')
    os.makedirs(args.work_dir, exist_ok=True)
    ensure_data(args)
    args.train_list = subset_train_list(args)
    args.epochs_used = 1 if args.smoke else args.epochs
    rows = unique_rows(args.rows)
    runs = sorted({index for index, _ in rows})
    total = len(runs) * len(args.seeds)
    cache, began = {}, time.time()
    by_index = {index: row for index, row in rows}
    machine = (f'{platform.processor() or platform.machine()}, '
               f'{os.cpu_count()} CPU(s), torch threads '
               f'{torch.get_num_threads()}')
    for seed in args.seeds:  # seed-major: a partial run has every row
        for index in runs:
            row = by_index[index]
            result = train_one(row, seed, args)
            cache[(index, seed)] = result
            elapsed = time.time() - began
            eta = elapsed / len(cache) * (total - len(cache))
            print(f'[{len(cache)}/{total}] {row[0]:<7} {row[1]:<26} seed '
                  f'{seed}: top-1 {result["top1"]:.1%}, direction '
                  f'{result["direction"]:.1%} ({result["seconds"]:.0f} s, '
                  f'ETA {eta / 60:.0f} min)', flush=True)
        write_outputs(rows, cache, args, time.time() - began, machine,
                      final=False)
    text, stem = write_outputs(rows, cache, args, time.time() - began,
                               machine, final=True)
    print(text)
    print(f'wrote {stem}.md, {stem}.json and {stem}.png')
    return 0


if __name__ == '__main__':
    sys.exit(main())
