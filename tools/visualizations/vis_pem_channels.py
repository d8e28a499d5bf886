# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TDRL Fig. 3: the channels a PEM enhances and suppresses, per frame.

Example::

    python tools/visualizations/vis_pem_channels.py \\
        configs/_base_/models/tdrl_r50.py tdrl_r50_k400.pth \\
        ../shared/data/videos/kinetics_arm_wrestling.mp4 --out fig3.png

Rows: the input frames; the features before the PEM as RGB (three
channel groups averaged); the mean of the ``k`` channels with the highest
attention; the mean of the ``k`` with the lowest. Each map row is scaled
jointly over its frames. The logic is
:func:`mmaction_tdx.visualization.pem_channel_maps`.
"""
import argparse
import sys

from mmengine import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw the channels a TDRL PEM enhances/suppresses.')
    parser.add_argument('config', help='TDRL config file')
    parser.add_argument(
        'checkpoint', help="checkpoint file/URL, or 'none' for random init")
    parser.add_argument('video', help='video file')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument(
        '--block',
        default='backbone.layer1.0',
        help='TDRL block whose PEM is shown (default: the first block of '
        'layer1, as in the paper)')
    parser.add_argument(
        '--k', type=int, default=10, help='channels per map (default 10)')
    parser.add_argument('--device', default='cpu', help="e.g. 'cuda:0'")
    parser.add_argument(
        '--no-strict',
        action='store_true',
        help='load checkpoints that do not fit the model (missing, '
        'unexpected or mismatched keys keep their initialisation)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='override config settings, xxx=yyy')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmaction_tdx  # noqa: F401
    from mmaction_tdx.apis import (
        CheckpointMismatchError,
        init_video_recognizer,
        video_inputs,
    )
    from mmaction_tdx.visualization import (
        capture_inputs,
        get_module,
        pem_channel_maps,
        save_image_grid,
        segment_frames,
    )
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    try:
        model = init_video_recognizer(args.config, checkpoint, args.device,
                                      args.cfg_options,
                                      strict=not args.no_strict)
        data = video_inputs(model, args.video)
        block = get_module(model, args.block)
        num_segments = model.backbone.num_segments
        x = capture_inputs(model, data, [args.block])[args.block]
        maps = pem_channel_maps(block, x[:num_segments], k=args.k)
    except (OSError, KeyError, TypeError, ValueError,
            CheckpointMismatchError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    frames = segment_frames(data['inputs'][0], x.shape[0])[:num_segments]
    rows = [('input', list(frames)),
            ('before PEM\n(3 channel groups)', list(maps['before_rgb'])),
            (f'top-{args.k}\nenhanced', list(maps['enhanced'])),
            (f'top-{args.k}\nsuppressed', list(maps['suppressed']))]
    save_image_grid(
        rows, args.out,
        col_titles=[f't={t + 1}' for t in range(num_segments)],
        title=f'PEM of {args.block}: mean of the {args.k} channels with the '
        'highest / lowest attention (TDRL Fig. 3)')
    attention = maps['attention']
    print(f'wrote {args.out}: {num_segments} frames, PEM of {args.block} '
          f'({attention.shape[1]} channels, attention '
          f'{attention.min():.3f}-{attention.max():.3f})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
