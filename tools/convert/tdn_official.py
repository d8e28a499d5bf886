# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Convert a checkpoint of the official TDN release (MCG-NJU/TDN) for
``load_from`` / ``init_recognizer`` with ``configs/_base_/models/tdn_r50.py``
or ``tdn_r101.py`` (override ``backbone.num_segments`` and
``cls_head.num_classes`` as needed).

Examples::

    python tools/convert/tdn_official.py best.pth.tar tdn_r50_k400.pth
    python tools/convert/tdn_official.py sthv1_8f.pth.tar out.pth \\
        --label-order sthv1
    python tools/convert/tdn_official.py k400/*.pth.tar --out-dir converted/

With ``--out-dir`` every input is converted to ``OUT_DIR/NAME.pth``
(``NAME``: the input's name without ``.pth.tar`` / ``.pth``) under a
progress bar, and a summary line follows; the options apply to every file.

The class order written is MMAction2's, and the output says which order
was written and why. ``--label-order auto`` (the default) applies verified
orders only: Kinetics-400 (400 classes) is kept as stored, because the
release indexes it in MMAction2's order; a 174-class checkpoint needs
``--label-order sthv1`` (remapped from the release's alphabetical order)
or ``sthv2`` (kept). ``--label-order kinetics400-third-party-map`` applies
the UNVERIFIED map of an unmerged third-party pull request to the release;
``--label-order release`` keeps the release's order; ``--class-map FILE``
(one release class index per line, line ``i`` for output class ``i``) sets
any order. ``tools/convert/check_class_order.py`` checks a converted
checkpoint's order on a few labelled videos (docs/convert_tdn.md).
"""
import argparse
import os.path as osp
import sys

import torch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an MCG-NJU/TDN checkpoint to mmaction_tdx.')
    parser.add_argument(
        'paths',
        nargs='+',
        metavar='SRC [DST]',
        help='SRC DST: one checkpoint of the release (.pth.tar) and the '
        'output (.pth); with --out-dir: any number of SRC')
    parser.add_argument(
        '--out-dir', help='convert every SRC into this folder')
    parser.add_argument(
        '--depth',
        type=int,
        choices=(50, 101),
        help='expected ResNet depth (default: inferred from the file)')
    parser.add_argument(
        '--label-order',
        default='auto',
        choices=('auto', 'release', 'sthv1', 'sthv2', 'kinetics400',
                 'kinetics400-third-party-map'),
        help='class order to write (default: auto = verified orders only: '
        '400 classes kept as stored (= MMAction2 kinetics400.txt order), '
        '174 classes must be told sthv1 or sthv2, others kept). '
        'kinetics400-third-party-map: the UNVERIFIED map of an unmerged '
        'pull request to the release')
    parser.add_argument(
        '--class-map',
        help='file with one release class index per line; line i becomes '
        'output class i (overrides --label-order)')
    args = parser.parse_args(argv)
    if args.out_dir is None:
        if len(args.paths) != 2:
            parser.error('give SRC DST, or several SRC with --out-dir')
        args.src, args.dst = args.paths
    return args


def output_name(src: str) -> str:
    """``best.pth.tar`` -> ``best.pth``."""
    name = osp.basename(src)
    for suffix in ('.pth.tar', '.pth', '.tar'):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
            break
    return f'{name}.pth'


def summary_line(src: str, dst: str, summary: dict) -> str:
    release = ', '.join(f'{k[len("release_"):]}={v}'
                        for k, v in summary.items()
                        if k.startswith('release_'))
    return (f'Converted {osp.basename(src)} ({release}) -> {dst}: '
            f'ResNet-{summary["depth"]} TDN, {summary["num_classes"]} '
            f'classes; {summary["tensors"]} '
            f'tensors, {summary["folded_conv_biases"]} conv biases folded '
            f'into BN, {len(summary["dropped_keys"])} unused keys dropped '
            '(conv1_temp). Class order written: '
            f'{summary["class_order"]}.')


def convert_many(args, class_map) -> int:
    """Convert ``args.paths`` into ``args.out_dir`` under a progress bar;
    print each result, then ``converted N/M -> OUT_DIR``."""
    import os

    from mmengine.utils import ProgressBar

    from mmaction_tdx.models.utils.tdn_checkpoint import (
        convert_release_checkpoint,
    )
    os.makedirs(args.out_dir, exist_ok=True)
    names = [output_name(src) for src in args.paths]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        print(f'error: several inputs would be written to {clashes}; '
              'convert them into different folders', file=sys.stderr)
        return 1
    lines, failures = [], []
    bar = ProgressBar(len(args.paths), file=sys.stdout)
    for src, name in zip(args.paths, names):
        dst = osp.join(args.out_dir, name)
        try:
            checkpoint, summary = convert_release_checkpoint(
                src,
                depth=args.depth,
                label_order=args.label_order,
                class_map=class_map)
            torch.save(checkpoint, dst)
            lines.append(summary_line(src, dst, summary))
        except (ValueError, KeyError, OSError) as err:
            failures.append(f'error: {src}: {err}')
        bar.update()
    sys.stdout.write('\n')
    for line in lines:
        print(line)
    for line in failures:
        print(line, file=sys.stderr)
    print(f'converted {len(lines)}/{len(args.paths)} checkpoints -> '
          f'{args.out_dir}' + (f' ({len(failures)} failed)'
                               if failures else ''))
    return 1 if failures else 0


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
    if args.out_dir is not None:
        return convert_many(args, class_map)
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
    print(summary_line(args.src, args.dst, summary) + ' The weights do not '
          'store num_segments: the release fuses the S-TDM with (0.5, 0.5) '
          'for 8 segments and (0.75, 0.25) otherwise, so set '
          "backbone.num_segments to the checkpoint's segment count. To "
          'check the class order on ~20 labelled validation videos: '
          f'python tools/convert/check_class_order.py CONFIG {args.dst} '
          'VIDEO_LIST')
    return 0


if __name__ == '__main__':
    sys.exit(main())
