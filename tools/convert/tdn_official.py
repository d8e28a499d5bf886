# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Convert a checkpoint of the official TDN release (MCG-NJU/TDN) for
``load_from`` / ``init_recognizer`` with ``configs/_base_/models/tdn_r50.py``
or ``tdn_r101.py`` (override ``backbone.num_segments`` and
``cls_head.num_classes`` as needed).

Examples::

    python tools/convert/tdn_official.py best.pth.tar tdn_r50_k400.pth
    python tools/convert/tdn_official.py sthv1_8f.pth.tar out.pth \\
        --label-order sthv1

The class order written is MMAction2's: Kinetics-400 (400 classes) is
reordered from the release's ``kinetics-400-map.txt`` order to
MMAction2's alphabetical label map by default; a 174-class checkpoint needs
``--label-order sthv1`` or ``sthv2``. ``--label-order release`` keeps the
release's order; ``--class-map FILE`` (one release class index per line,
line ``i`` for output class ``i``) sets any order.
"""
import argparse
import os.path as osp
import sys

import torch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an MCG-NJU/TDN checkpoint to mmaction_tdx.')
    parser.add_argument('src', help='checkpoint of the release (.pth.tar)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--depth',
        type=int,
        choices=(50, 101),
        help='expected ResNet depth (default: inferred from the file)')
    parser.add_argument(
        '--label-order',
        default='auto',
        choices=('auto', 'release', 'sthv1', 'sthv2', 'kinetics400'),
        help='class order to write (default: auto = kinetics400 for 400 '
        'classes, else the release order; 174 classes must be told)')
    parser.add_argument(
        '--class-map',
        help='file with one release class index per line; line i becomes '
        'output class i (overrides --label-order)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmaction_tdx  # noqa: F401  (registers ResNetTDN)
    from mmaction_tdx.models.utils.tdn_checkpoint import (
        convert_release_checkpoint,
    )

    class_map = None
    if args.class_map:
        with open(args.class_map) as f:
            class_map = [int(line) for line in f if line.strip()]
    try:
        checkpoint, summary = convert_release_checkpoint(
            args.src,
            depth=args.depth,
            label_order=args.label_order,
            class_map=class_map)
    except (ValueError, KeyError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    torch.save(checkpoint, args.dst)
    release = ', '.join(f'{k[len("release_"):]}={v}'
                        for k, v in summary.items()
                        if k.startswith('release_'))
    print(f'Converted {osp.basename(args.src)} ({release}) -> {args.dst}: '
          f'ResNet-{summary["depth"]} TDN, {summary["num_classes"]} classes '
          f'in {summary["class_order"]}; {summary["tensors"]} tensors, '
          f'{summary["folded_conv_biases"]} conv biases folded into BN, '
          f'{len(summary["dropped_keys"])} unused keys dropped '
          '(conv1_temp). The weights do not store num_segments: the '
          'release fuses the S-TDM with (0.5, 0.5) for 8 segments and '
          '(0.75, 0.25) otherwise, so set backbone.num_segments to the '
          "checkpoint's segment count.")
    return 0


if __name__ == '__main__':
    sys.exit(main())
