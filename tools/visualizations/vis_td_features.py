# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TDRL Fig. 4: feature maps before and after the temporal module (TM) of a
model trained without the TD loss and of one trained with it.

Example::

    python tools/visualizations/vis_td_features.py \\
        ../shared/data/videos/kinetics_arm_wrestling.mp4 \\
        --without configs/tdrl/NO_TD_CONFIG.py no_td.pth \\
        --with configs/tdrl/TDRL_CONFIG.py tdrl.pth --out fig4.png

Rows: the input frames; w/o TD loss, before TM and after TM; w/ TD loss,
before TM and after TM. A map is the mean over channels (``--channel-ratio
0.5``: over the channels the TD loss regularises), each row scaled jointly
over its frames. The logic is
:func:`mmaction_tdx.visualization.tm_feature_maps`.
"""
import argparse
import sys

from mmengine import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw TDRL features before/after the TM, without and '
        'with the TD loss.')
    parser.add_argument('video', help='video file')
    parser.add_argument(
        '--without', nargs=2, metavar=('CONFIG', 'CHECKPOINT'),
        required=True, help='model trained without the TD loss')
    parser.add_argument(
        '--with', dest='with_td', nargs=2, metavar=('CONFIG', 'CHECKPOINT'),
        required=True, help='model trained with the TD loss')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument(
        '--block',
        default='backbone.layer2.-1',
        help='TDRL block (default: the last block of layer2, as in the '
        'paper)')
    parser.add_argument(
        '--channel-ratio', type=float, default=1.0,
        help='average the first ratio*C channels (default 1.0: all)')
    parser.add_argument('--device', default='cpu', help="e.g. 'cuda:0'")
    parser.add_argument(
        '--no-strict',
        action='store_true',
        help='load checkpoints that do not fit the model (missing, '
        'unexpected or mismatched keys keep their initialisation)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='override settings of both configs, xxx=yyy')
    return parser.parse_args(argv)


def model_rows(config, checkpoint, args, tag):
    """The frames and the two map rows of one model."""
    from mmaction_tdx.apis import init_video_recognizer, video_inputs
    from mmaction_tdx.visualization import (
        capture_inputs,
        get_module,
        segment_frames,
        tm_feature_maps,
    )
    checkpoint = None if checkpoint.lower() == 'none' else checkpoint
    model = init_video_recognizer(config, checkpoint, args.device,
                                  args.cfg_options,
                                  strict=not args.no_strict)
    data = video_inputs(model, args.video)
    num_segments = model.backbone.num_segments
    x = capture_inputs(model, data, [args.block])[args.block]
    maps = tm_feature_maps(
        get_module(model, args.block), x[:num_segments], args.channel_ratio)
    frames = segment_frames(data['inputs'][0], x.shape[0])[:num_segments]
    rows = [(f'{tag}\nbefore TM', list(maps['before_tm'])),
            (f'{tag}\nafter TM', list(maps['after_tm']))]
    return frames, rows


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmaction_tdx  # noqa: F401
    from mmaction_tdx.apis import CheckpointMismatchError
    from mmaction_tdx.visualization import save_image_grid
    try:
        _, rows_without = model_rows(*args.without, args, 'w/o TD loss')
        frames, rows_with = model_rows(*args.with_td, args, 'w/ TD loss')
    except (OSError, KeyError, TypeError, ValueError,
            CheckpointMismatchError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    save_image_grid(
        [('input', list(frames))] + rows_without + rows_with, args.out,
        col_titles=[f't={t + 1}' for t in range(len(frames))],
        title=f'{args.block}: features before/after the TM, without and '
        'with the TD loss (TDRL Fig. 4)')
    print(f'wrote {args.out}: {len(frames)} frames, TM of {args.block}, '
          'rows: input, w/o TD (before, after TM), w/ TD (before, after TM)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
