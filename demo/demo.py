# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Recognise the action in a video: MMAction2's ``demo/demo.py`` for our
configs. Prints the top-5 labels with their scores.

Example::

    python demo/demo.py configs/_base_/models/tdn_r50.py tdn_r50_k400.pth \\
        arm_wrestling.mp4 label_map_k400.txt --device cpu

CONFIG may be a full config (its test pipeline is used) or a model-only
config (``configs/_base_/models/*.py``: the standard single-view video
pipeline for the backbone's sampling is used). CHECKPOINT ``none`` keeps
the random initialisation (for plumbing checks only). A checkpoint of
another model (other keys or shapes) is refused with the list of
differences, exit 1; ``--no-strict`` loads the keys that fit. The logic is
:mod:`mmaction_tdx.apis.inference`.
"""
import argparse
import os.path as osp
import sys

# tools/_quiet.py hides the known upstream warnings before mmcv, mmengine
# and mmaction are imported (some warn at import).
sys.path.insert(
    0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools'))
from _quiet import quiet_upstream  # noqa: E402

quiet_upstream()

from mmengine import DictAction  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Print the top-5 labels of a video (MMAction2 demo).')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint', help="checkpoint file/URL, or 'none' for random init")
    parser.add_argument('video', help='video file')
    parser.add_argument('label', help='label map, one class name a line')
    parser.add_argument(
        '--device', default=None, help="e.g. 'cpu' or 'cuda:0' (default: "
        'cuda:0 if available, else cpu)')
    parser.add_argument(
        '--top-k', type=int, default=5, help='labels to print (default 5)')
    parser.add_argument(
        '--no-strict',
        action='store_true',
        help='load a checkpoint that does not fit the model (missing, '
        'unexpected or mismatched keys keep their initialisation; for '
        'debugging only)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override config settings, xxx=yyy, e.g. '
        'model.backbone.num_segments=16')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmaction_tdx  # noqa: F401  (repairs the stack, registers ours)
    from mmaction_tdx.apis import (
        CheckpointMismatchError,
        default_device,
        init_video_recognizer,
        load_label_map,
        recognize_video,
    )
    from mmaction_tdx.compat.safe_checkpoint import (
        CheckpointFileError,
        UnsafeCheckpointError,
    )
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    try:
        labels = load_label_map(args.label)
        model = init_video_recognizer(
            args.config,
            checkpoint,
            device=args.device or default_device(),
            cfg_options=args.cfg_options,
            strict=not args.no_strict)
        results = recognize_video(model, args.video, labels, args.top_k)
    except (OSError, ValueError, CheckpointFileError, CheckpointMismatchError,
            UnsafeCheckpointError) as err:
        # The message names the file and the fix; a traceback would bury it.
        print(f'error: {type(err).__name__}: {err}', file=sys.stderr)
        return 1
    print(f'The top-{len(results)} labels with corresponding scores are:')
    for label, score in results:
        print(f'{label}: {score:.6f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
