# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Windows per second of windowed recognition, decode and model apart.

    python tools/analysis/benchmark_long_video.py VIDEO \\
        [--window 2 --stride 1 --threads 2 --models tsn tdn tdn_deploy tdrl]

Runs :class:`mmaction_tdx.apis.VideoRecognizer` (random weights: speed does
not depend on them) with the R50 configs at their own test pipelines over
VIDEO and prints, per model, the windows, the decode and model time per
window and windows per second. Decode time is the time spent waiting for
frames between two windows (decord, once per frame, shared by overlapping
windows); model time is the test pipeline (crop, resize) plus the forward
pass of one window. Run it alone on the machine.
"""
import argparse
import os.path as osp
import sys
import time

from mmengine import DictAction

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

MODELS = {
    'tsn': ('configs/tdn/ablations/'
            'tsn_imagenet-pretrained-r50_8xb8-1x1x8-60e_sthv1-rgb.py', False),
    'tdn': ('configs/tdn/tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_'
            'sthv1-rgb.py', False),
    'tdn_deploy': ('configs/tdn/tdn_imagenet-pretrained-r50_8xb8-5x1x8-'
                   '60e_sthv1-rgb.py', True),
    'tdrl': ('configs/tdrl/tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_'
             'sthv1-rgb.py', False),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('video')
    parser.add_argument('--window', type=float, default=2.0)
    parser.add_argument('--stride', type=float, default=1.0)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--max-windows', type=int, default=None,
                        help='stop after this many windows per model')
    parser.add_argument('--models', nargs='+', default=list(MODELS),
                        choices=list(MODELS))
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={}, help='overrides for every model')
    return parser.parse_args(argv)


def video_test_config(path: str, overrides: dict):
    """The config with its test pipeline reading video files (the
    Something-Something configs read raw frames) and no ImageNet weights
    (speed does not depend on them)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, path))
    pipeline = [
        dict(type='DecordDecode') if step['type'] == 'RawFrameDecode' else
        step for step in cfg.test_pipeline
    ]
    if pipeline[0]['type'] != 'DecordInit':
        pipeline.insert(0, dict(type='DecordInit'))
    cfg.test_pipeline = pipeline
    cfg.test_dataloader.dataset.pipeline = pipeline
    cfg.model.backbone.pretrained = None
    cfg.model.backbone.pop('init_cfg', None)
    cfg.merge_from_dict(overrides)
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    sys.path.insert(0, REPO)
    import mmaction_tdx  # noqa: F401
    from mmaction_tdx.apis.video_recognizer import VideoRecognizer

    rows = []
    for name in args.models:
        path, deploy = MODELS[name]
        recognizer = VideoRecognizer(
            video_test_config(path, args.cfg_options), None, device='cpu',
            deploy=deploy)
        windows, started = [], time.perf_counter()
        for window in recognizer.windows(args.video, args.window,
                                         args.stride):
            windows.append(window)
            if args.max_windows and len(windows) >= args.max_windows:
                break
        wall = time.perf_counter() - started
        decode = sum(w.decode_s for w in windows) / len(windows)
        model = sum(w.model_s for w in windows) / len(windows)
        rows.append((name, len(windows), decode * 1000, model * 1000,
                     len(windows) / wall))
    print(f'\n{args.video}: {args.window:g} s windows, stride '
          f'{args.stride:g} s, {args.threads} threads')
    print(f'{"model":<11}{"windows":>8}{"decode ms":>11}{"model ms":>10}'
          f'{"windows/s":>11}')
    for name, count, decode, model, rate in rows:
        print(f'{name:<11}{count:>8}{decode:>11.1f}{model:>10.1f}'
              f'{rate:>11.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
