# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Train a recognizer (MMAction2's ``tools/train.py`` command line).

Example::

    python tools/train.py configs/quickstart/<config>.py --work-dir work_dirs/x
    python tools/train.py CONFIG --resume            # from the last checkpoint
    python -m torch.distributed.run --nproc_per_node=2 tools/train.py CONFIG \
        --launcher pytorch
"""
import argparse
import os
import os.path as osp
import shlex
import sys

# tools/_quiet.py, also when this file is loaded by path (tests, mim).
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _quiet import quiet_upstream  # noqa: E402

# Before mmcv/mmengine/mmaction are imported: some warn at import.
quiet_upstream()

from mmaction.registry import RUNNERS  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

# Importing the package first repairs the stack (mmaction_tdx.compat) even
# before the config's ``custom_imports`` are read.
import mmaction_tdx  # noqa: F401,E402
from mmaction_tdx.datasets.annotation_checks import (  # noqa: E402
    missing_annotation_files,
    missing_data_message,
)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a recognizer')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or (no value) from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic mixed precision')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument(
        '--diff-rank-seed',
        action='store_true',
        help='set a different seed on each rank')
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='use deterministic algorithms')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. key=value or a.b=[1,2]')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args) -> Config:
    """Apply the command-line options to the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(
                f'--amp needs an OptimWrapper, the config has {optim_wrapper}')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})
        cfg.auto_scale_lr.enable = True
    randomness = dict(cfg.get('randomness', {}) or {})
    # Runner.set_randomness needs a seed (None: a random one).
    randomness.setdefault('seed', None)
    if args.seed is not None:
        randomness['seed'] = args.seed
    if args.deterministic:
        randomness['deterministic'] = True
    if args.diff_rank_seed:
        randomness['diff_rank_seed'] = True
    cfg.randomness = randomness
    return cfg


def check_data_exists(cfg: Config) -> None:
    """Stop before building anything if the dataloaders' annotation files
    are missing, listing them all and saying how to get the data (e.g. the
    command that generates the quick-start data)."""
    loaders = ['train_dataloader']
    if cfg.get('val_cfg') and cfg.get('val_dataloader'):
        loaders.append('val_dataloader')
    missing = missing_annotation_files(cfg, loaders)
    if missing:
        raise SystemExit(missing_data_message(missing))


def resume_command(argv, work_dir: str) -> str:
    """The command line that continues this run: ``argv`` (this script's
    arguments) with any ``--resume [CKPT]`` replaced by ``--resume`` (the
    latest checkpoint of the work dir) and the work dir made explicit."""
    kept, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == '--resume':
            # `--resume CKPT`: drop CKPT too (an option never starts a path
            # with '-', and the config is the first positional argument).
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            skip = nxt is not None and not nxt.startswith('-')
            continue
        if arg.startswith('--resume='):
            continue
        kept.append(arg)
    if '--work-dir' not in kept and not any(
            a.startswith('--work-dir=') for a in kept):
        kept[1:1] = ['--work-dir', work_dir]
    script = osp.relpath(osp.abspath(__file__))
    if script.startswith('..'):
        script = osp.abspath(__file__)
    return shlex.join(['python', script, *kept, '--resume'])


def interrupted_message(runner, argv) -> str:
    """One line for Ctrl-C: where training stopped and how to continue."""
    from mmengine.runner import find_latest_checkpoint
    where = (f'epoch {runner.epoch + 1}, iteration {runner.iter + 1}'
             if runner is not None else 'before the first iteration')
    work_dir = runner.work_dir if runner is not None else None
    latest = find_latest_checkpoint(work_dir) if work_dir else None
    if latest is None:
        return (f'Interrupted ({where}); no checkpoint was saved yet, so '
                'a new run starts from the beginning.')
    return (f'Interrupted ({where}). Continue from {latest} with: '
            f'{resume_command(argv, work_dir)}')


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg = merge_args(cfg, args)
    check_data_exists(cfg)
    runner = None
    try:
        if 'runner_type' in cfg:
            runner = RUNNERS.build(cfg)
        else:
            runner = Runner.from_cfg(cfg)
        runner.train()
    except KeyboardInterrupt:
        # One line instead of the tracebacks of every frame (and of the
        # data loader workers), with the command that resumes the run; one
        # process says it for all ranks.
        from mmengine.dist import is_main_process
        if is_main_process():
            print(interrupted_message(runner, sys.argv[1:]),
                  file=sys.stderr)
        sys.exit(130)  # the shell's code for SIGINT


if __name__ == '__main__':
    main()
