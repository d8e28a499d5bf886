# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Test (evaluate) a checkpoint (MMAction2's ``tools/test.py`` command line).

Example::

    python tools/test.py CONFIG CHECKPOINT --dump results.pkl
"""
import argparse
import os
import os.path as osp
import sys

# tools/_quiet.py, also when this file is loaded by path (tests, mim).
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _quiet import quiet_upstream  # noqa: E402

# Before mmcv/mmengine/mmaction are imported: some warn at import.
quiet_upstream()

from mmaction.registry import RUNNERS  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmaction_tdx  # noqa: F401,E402  (repairs the stack first)
from mmaction_tdx.datasets.annotation_checks import (  # noqa: E402
    missing_annotation_files,
    missing_data_message,
)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the evaluation metrics')
    parser.add_argument(
        '--dump',
        type=str,
        help='dump predictions to a pickle file for offline evaluation or '
        'score fusion')
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
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.dump is not None:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise ValueError('--dump must name a .pkl or .pickle file, got '
                             f'{args.dump!r}')
        dump_metric = dict(type='DumpResults', out_file_path=args.dump)
        if isinstance(cfg.test_evaluator, (list, tuple)):
            cfg.test_evaluator = list(cfg.test_evaluator) + [dump_metric]
        else:
            cfg.test_evaluator = [cfg.test_evaluator, dump_metric]
    cfg.load_from = args.checkpoint
    return cfg


def check_data_exists(cfg: Config) -> None:
    """Stop before building anything if the dataloaders' annotation files
    are missing, listing them all and saying how to get the data (e.g. the
    command that generates the quick-start data)."""
    loaders = ['test_dataloader']
    missing = missing_annotation_files(cfg, loaders)
    if missing:
        raise SystemExit(missing_data_message(missing))


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg = merge_args(cfg, args)
    check_data_exists(cfg)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    runner.test()


if __name__ == '__main__':
    main()
