# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Recognise actions along a long video, window by window, or on a live
stream.

Windowed (a file)::

    python demo/long_video_demo.py CONFIG CHECKPOINT VIDEO LABEL_MAP \\
        --window 2 --stride 1 --out-json out.json --out-png out.png

Live (a camera index, an RTSP/HTTP URL, or a file read in real time with
``--realtime``)::

    python demo/long_video_demo.py CONFIG CHECKPOINT 0 LABEL_MAP --stream

Each window is sampled by the model's own test pipeline as a video of the
window's length would be (so its scores equal ``demo/demo.py`` on that
window cut out as a video); frames are decoded once and shared by
overlapping windows. Outputs: JSON (settings, model, per-window top-k and
times), optional CSV, a timeline PNG, an optional annotated video.
The logic is :mod:`mmaction_tdx.apis.video_recognizer`.
"""
import argparse
import csv
import json
import os.path as osp
import sys
import time

from mmengine import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Windowed action recognition of a long video or a '
        'live stream.')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint', help="checkpoint file/URL, or 'none' for random init")
    parser.add_argument(
        'video', help='video file, camera index (e.g. 0) or stream URL')
    parser.add_argument('label', help='label map, one class name a line')
    parser.add_argument('--window', type=float, default=2.0,
                        help='window length in seconds (default 2)')
    parser.add_argument('--stride', type=float, default=None,
                        help='seconds between window starts (default: '
                        'the window, i.e. no overlap)')
    parser.add_argument('--out-json', help='per-window results (JSON)')
    parser.add_argument('--out-csv', help='per-window top-k (CSV)')
    parser.add_argument('--out-png', help='timeline picture (PNG)')
    parser.add_argument('--out-video',
                        help='video with the top-1 label drawn (mp4)')
    parser.add_argument('--smooth', type=int, default=1,
                        help='moving average of the scores over this many '
                        'windows (odd; default 1: off)')
    parser.add_argument('--top-k', type=int, default=5)
    parser.add_argument('--device', default=None,
                        help="e.g. 'cpu' or 'cuda:0' (default: a GPU if "
                        'one is visible)')
    parser.add_argument('--deploy', action='store_true',
                        help="apply the models' switch_to_deploy()")
    parser.add_argument('--stream', action='store_true',
                        help='print each prediction as its window '
                        'completes, with its latency')
    parser.add_argument('--realtime', action='store_true',
                        help='read a file at its frame rate (a stand-in '
                        'for a camera)')
    parser.add_argument('--open-timeout', type=float, default=10.0,
                        help='seconds to wait for a stream to open')
    parser.add_argument('--no-strict', action='store_true',
                        help='load a checkpoint that does not fit the '
                        'model (missing/unexpected keys are skipped)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={}, help='override config settings')
    return parser.parse_args(argv)


def _write_outputs(args, recognizer, source, windows, scores) -> list:
    written = []
    labels = recognizer.labels
    if args.out_json:
        report = dict(
            settings=dict(
                config=args.config, checkpoint=args.checkpoint,
                video=args.video, window_s=args.window,
                stride_s=args.stride or args.window, top_k=args.top_k,
                smoothing_windows=args.smooth, deploy=args.deploy,
                device=str(recognizer.device)),
            model=dict(
                recognizer=type(recognizer.model).__name__,
                backbone=type(recognizer.model.backbone).__name__,
                frames_per_clip=recognizer.min_frames,
                num_classes=recognizer.num_classes),
            video=dict(fps=source.fps, num_frames=source.num_frames),
            windows=[])
        for window, row in zip(windows, scores):
            entry = window.to_dict()
            if args.smooth > 1:
                order = row.argsort()[::-1][:args.top_k]
                entry['top_k'] = [dict(label=labels[i], score=float(row[i]))
                                  for i in order]
            report['windows'].append(entry)
        with open(args.out_json, 'w') as f:
            json.dump(report, f, indent=1)
        written.append(args.out_json)
    if args.out_csv:
        with open(args.out_csv, 'w', newline='') as f:
            out = csv.writer(f)
            out.writerow(['window', 'start_s', 'end_s', 'rank', 'label',
                          'score'])
            for window, row in zip(windows, scores):
                for rank, i in enumerate(row.argsort()[::-1][:args.top_k]):
                    out.writerow([window.index, f'{window.start:.3f}',
                                  f'{window.end:.3f}', rank + 1, labels[i],
                                  f'{row[i]:.6f}'])
        written.append(args.out_csv)
    if args.out_png:
        from mmaction_tdx.visualization.timeline import plot_timeline
        plot_timeline(windows, labels, args.out_png, scores=scores,
                      title=f'{osp.basename(str(args.video))}: '
                      f'{args.window:g} s windows, stride '
                      f'{args.stride or args.window:g} s')
        written.append(args.out_png)
    if args.out_video:
        from mmaction_tdx.apis.frame_sources import open_source
        from mmaction_tdx.visualization.timeline import write_annotated_video
        write_annotated_video(open_source(args.video), source.fps, windows,
                              labels, args.out_video, scores=scores)
        written.append(args.out_video)
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    import mmaction_tdx  # noqa: F401  (repairs the stack, registers ours)
    from mmaction_tdx.apis.frame_sources import FrameSourceError, open_source
    from mmaction_tdx.apis.video_recognizer import (
        VideoRecognizer,
        smooth_scores,
    )
    from mmaction_tdx.compat.safe_checkpoint import (
        CheckpointFileError,
        UnsafeCheckpointError,
    )
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    windows = []
    try:
        if args.smooth < 1 or args.smooth % 2 == 0:
            raise ValueError(f'--smooth must be odd and >= 1, got '
                             f'{args.smooth}.')
        recognizer = VideoRecognizer(
            args.config, checkpoint, labels=args.label, device=args.device,
            deploy=args.deploy, top_k=args.top_k,
            cfg_options=args.cfg_options, strict=not args.no_strict)
        source = open_source(args.video, realtime=args.realtime,
                             open_timeout=args.open_timeout)
        size = recognizer.window_frames(args.window, source.fps)
        if source.num_frames is not None and source.num_frames < size:
            print(f'The video has {source.num_frames} frames, fewer than a '
                  f'window of {size}: one window over the whole video.')
        started = time.perf_counter()
        for window in recognizer.windows(source, args.window, args.stride):
            windows.append(window)
            label, score = window.top_k[0]
            line = (f'{window.start:8.2f}-{window.end:8.2f} s  {label} '
                    f'{score:.3f}')
            if args.stream:
                line += f'  (latency {window.latency_s * 1000:.0f} ms)'
            print(line, flush=True)
    except KeyboardInterrupt:
        print(f'Stopped after {len(windows)} window(s).')
        if not windows:
            return 130
    except (OSError, ValueError, FrameSourceError, CheckpointFileError,
            UnsafeCheckpointError) as err:
        print(f'error: {type(err).__name__}: {err}', file=sys.stderr)
        if not windows:
            return 1
        print(f'Writing the {len(windows)} window(s) recognised so far.',
              file=sys.stderr)
    elapsed = time.perf_counter() - started
    decode = sum(w.decode_s for w in windows)
    model = sum(w.model_s for w in windows)
    print(f'{len(windows)} windows in {elapsed:.1f} s: decode '
          f'{decode / len(windows) * 1000:.0f} ms, model '
          f'{model / len(windows) * 1000:.0f} ms per window.')
    scores = smooth_scores(np.stack([w.scores for w in windows]),
                           args.smooth)
    for path in _write_outputs(args, recognizer, source, windows, scores):
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
