# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Grad-CAM of TDN and of a baseline on the frames of a video (TDN paper,
Sec. 4.4 and supplementary Figs. 5-7): MMAction2's ``vis_cam.py`` for our
models, writing a PNG grid.

Example (Figs. 6-7: 8 frames; Fig. 4: ``--segments 3``, the centre frame;
Fig. 5: ``--target-layer-name backbone.layer1`` and an S-TDM-only model)::

    python tools/visualizations/vis_cam.py configs/_base_/models/tdn_r50.py \\
        tdn.pth ../shared/data/videos/kinetics_arm_wrestling.mp4 \\
        --compare baseline BASELINE_CONFIG.py baseline.pth \\
        --label-map ../shared/data/label_maps/kinetics400.txt \\
        --out-filename cam.png

The baseline of the paper is TDN without its TDMs, only temporal convs
(Table 1(e), first row): ``model.backbone.short_term_tdm=None`` and
``long_term_tdm=None``. Rows: the frames (for TDN the centre frame of each
segment), then one heatmap row per ``--compare`` model, then the main
model. Every model explains its own top-1 class unless ``--target-class``
is given. The logic is :class:`mmaction_tdx.visualization.SegmentGradCAM`.
"""
import argparse
import sys

from mmengine import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Grad-CAM of one or more recognizers on a video (PNG).')
    parser.add_argument('config', help='config of the main model (TDN)')
    parser.add_argument(
        'checkpoint', help="checkpoint file/URL, or 'none' for random init")
    parser.add_argument('video', help='video file')
    parser.add_argument(
        '--name', default='TDN', help='row title of the main model')
    parser.add_argument(
        '--compare', nargs=3, action='append', default=[],
        metavar=('NAME', 'CONFIG', 'CHECKPOINT'),
        help='another model to show above the main one (repeatable)')
    parser.add_argument(
        '--target-layer-name', default='backbone/layer4',
        help="layer to explain, '/' or '.' separated, negative indices "
        "allowed (default: backbone/layer4, the last stage)")
    parser.add_argument(
        '--segments', type=int, nargs='+', default=None,
        help='segment indices to show (default: all)')
    parser.add_argument(
        '--target-class', type=int, default=None,
        help='class to explain (default: each model\'s top-1)')
    parser.add_argument('--label-map', help='class names, to title rows')
    parser.add_argument(
        '--alpha', type=float, default=0.5, help='heatmap weight')
    parser.add_argument(
        '--out-filename', required=True, help='PNG to write')
    parser.add_argument('--device', default='cpu', help="e.g. 'cuda:0'")
    parser.add_argument(
        '--no-strict',
        action='store_true',
        help='load checkpoints that do not fit the model (missing, '
        'unexpected or mismatched keys keep their initialisation)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='override settings of every config, xxx=yyy')
    return parser.parse_args(argv)


def explain(name, config, checkpoint, args, labels):
    """``(frames, blended, row title)`` of one model."""
    from mmaction_tdx.apis import init_video_recognizer, video_inputs
    from mmaction_tdx.visualization import SegmentGradCAM, segment_frames
    checkpoint = None if checkpoint.lower() == 'none' else checkpoint
    model = init_video_recognizer(config, checkpoint, args.device,
                                  args.cfg_options,
                                  strict=not args.no_strict)
    data = video_inputs(model, args.video)
    cam = SegmentGradCAM(model, args.target_layer_name)
    try:
        blended, scores = cam(
            data, alpha=args.alpha, target_class=args.target_class)
    finally:
        cam.remove()
    blended = blended[0].numpy()
    frames = segment_frames(data['inputs'][0], blended.shape[0])
    cls = args.target_class if args.target_class is not None else int(
        scores[0].argmax())
    prob = float(scores[0].softmax(0)[cls])
    label = labels[cls] if labels and cls < len(labels) else f'class {cls}'
    return frames, blended, f'{name}\n{label} ({prob:.2f})'


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmaction_tdx  # noqa: F401
    from mmaction_tdx.apis import load_label_map
    from mmaction_tdx.visualization import save_image_grid
    models = [*args.compare, (args.name, args.config, args.checkpoint)]
    try:
        labels = load_label_map(args.label_map) if args.label_map else None
        explained = [explain(*model, args, labels) for model in models]
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    frames = explained[-1][0]
    segments = args.segments or list(range(len(frames)))
    wrong = [s for s in segments if not 0 <= s < len(frames)]
    if wrong:
        print(f'error: --segments {wrong} out of range 0-{len(frames) - 1}',
              file=sys.stderr)
        return 1
    rows = [('frames', [frames[s] for s in segments])]
    rows += [(title, [blended[s] for s in segments])
             for _, blended, title in explained]
    save_image_grid(
        rows, args.out_filename,
        col_titles=[f'segment {s}' for s in segments],
        title=f'Grad-CAM of {args.target_layer_name}')
    names = ', '.join(model[0] for model in models)
    print(f'wrote {args.out_filename}: Grad-CAM of {args.target_layer_name} '
          f'for {names} on {len(segments)} segment(s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
