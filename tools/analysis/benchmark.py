# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Speed, memory and FLOPs of our models beside MMAction2's TSN and TSM.

Example (the run in docs/benchmark.md)::

    python tools/analysis/benchmark.py --threads 2 --compile --profile \\
        --out work_dirs/benchmark/benchmark.json \\
        tdn_r50 tdn_deploy=tdn_r50,deploy tdn_release tdrl_r50

Models are given as ``[LABEL=]TARGET[,KEY=VALUE...]``: ``TARGET`` is a
config file, ``tdn_r50``/``tdrl_r50`` (our base configs), or a backbone
type; ``KEY=VALUE`` overrides the model dict, e.g.
``tdrl_no_td=tdrl_r50,cls_head.loss_td=None``. Without models: TDN-R50,
TDRL-R50, and TDRL-R50 without the TD loss. MMAction2's TSN-R50 and TSM-R50
are always measured in the same process, interleaved with ours.
``tdn_release`` is TDN-R50 in the official release's layout;
``,deploy`` applies the models' ``switch_to_deploy()`` (inference only).
``--compile`` measures every model also under ``torch.compile``, side by
side with the eager one in the same run; with ``--profile`` too, the time
of every compiled inference is split by extern convolution class and
inductor's fused kernel family (the models are then compiled with
inductor's kernel profiling markers).

Prints the thread count, a Markdown table (median ±half-IQR, ratios to TSN
and TSM), optionally the time per module type (``--profile``) and the data
pipeline throughput (``--pipeline``), then a summary line; writes
everything to ``--out`` as JSON. The logic is in ``benchmark_lib.py`` and
``benchmark_pipeline.py`` beside this file (developer tooling, not part of
the installed package).
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
# tools/_quiet.py: before benchmark_lib imports mmcv/mmaction.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _quiet import quiet_upstream  # noqa: E402

quiet_upstream()
import benchmark_lib as bench  # noqa: E402
import benchmark_pipeline as pipe  # noqa: E402

DEFAULT_VIDEOS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), '..',
    'shared', 'data', 'videos')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark models against MMAction2 TSN-R50/TSM-R50: '
        'inference latency, training step, peak memory, GFLOP/s.')
    parser.add_argument(
        'models',
        nargs='*',
        help='[LABEL=]TARGET[,KEY=VALUE...] (default: tdn_r50, tdrl_r50, '
        'tdrl_r50 without the TD loss)')
    defaults = bench.BenchmarkSettings()
    parser.add_argument('--depth', type=int, default=defaults.depth)
    parser.add_argument(
        '--num-segments', type=int, default=defaults.num_segments)
    parser.add_argument('--img-size', type=int, default=defaults.img_size)
    parser.add_argument(
        '--train-batch',
        type=int,
        default=defaults.train_batch,
        help='videos per training step')
    parser.add_argument(
        '--repeats',
        type=int,
        default=defaults.repeats,
        help='timed runs per measurement')
    parser.add_argument('--warmup', type=int, default=defaults.warmup)
    parser.add_argument(
        '--threads',
        type=int,
        default=defaults.threads,
        help='intra-op threads (torch.set_num_threads)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='also measure every model\'s inference under torch.compile '
        '(inductor), interleaved with the eager runs')
    parser.add_argument(
        '--compile-train',
        action='store_true',
        help='with --compile, also the compiled training step (compiles '
        'the backward graphs too: slow)')
    parser.add_argument(
        '--bytes',
        action='store_true',
        help='also count the bytes read + written by one inference: eager '
        'per ATen op and module type, compiled (with --compile) by '
        'inductor\'s accounting (machine-independent; bytes_moved.py)')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='also print the time per module type of every model '
        '(inference and training step); with --compile, also the time of '
        'every compiled inference per extern convolution class and fused '
        'kernel family, and its slowest kernels')
    parser.add_argument(
        '--profile-top', type=int, default=12, help='rows per profile')
    parser.add_argument(
        '--pipeline',
        action='store_true',
        help='also measure data pipeline throughput (TSN vs TDN sampling)')
    parser.add_argument(
        '--videos',
        default=DEFAULT_VIDEOS,
        help='folder of videos for --pipeline')
    parser.add_argument(
        '--pipeline-repeats',
        type=int,
        default=pipe.PipelineSettings().repeats,
        help='clips per video and sampling for --pipeline')
    parser.add_argument(
        '--out',
        default='work_dirs/benchmark/benchmark.json',
        help='JSON file to write')
    return parser.parse_args(argv)


def make_progress(console: Console) -> Progress:
    return Progress(
        TextColumn('{task.description:<28}'),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True)


@contextlib.contextmanager
def quiet_profiler():
    """Keep kineto (torch.profiler's backend) from printing ``USDT: ...
    profiler_start`` and ``profiler_stop`` to stderr for every profile
    (peak memory, ``--profile``): its log level, read once at its first
    use in the process, above USDT's (5), unless the user set one. The
    environment is restored afterwards (``main`` may run in a test
    process)."""
    before = os.environ.get('KINETO_LOG_LEVEL')
    os.environ.setdefault('KINETO_LOG_LEVEL', '6')
    try:
        yield
    finally:
        if before is None:
            os.environ.pop('KINETO_LOG_LEVEL', None)


def main(argv=None) -> int:
    args = parse_args(argv)
    with quiet_profiler():
        return run(args)


def run(args: argparse.Namespace) -> int:
    settings = bench.BenchmarkSettings(
        depth=args.depth,
        num_segments=args.num_segments,
        img_size=args.img_size,
        train_batch=args.train_batch,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        compile=args.compile,
        compile_train=args.compile_train,
        bytes=args.bytes,
        # Inductor's kernels must record profiler events from their
        # compilation on (the timed runs' one).
        kernel_profile=args.profile and args.compile)
    specs = ([bench.parse_model_spec(m) for m in args.models]
             if args.models else bench.default_specs())
    threads = bench.set_threads(settings.threads)
    machine = bench.machine_info()
    print(f"threads: {threads} intra-op, {machine['interop_threads']} "
          f"inter-op; CPU: {machine['cpu']} ({machine['logical_cpus']} "
          f"logical); load average at start: "
          f"{', '.join(f'{x:.2f}' for x in machine['load_average'])}")
    print(f'settings: R{settings.depth}, T={settings.num_segments}, '
          f'{settings.img_size}x{settings.img_size}, inference 1 video x 1 '
          f'view, training {settings.train_batch} videos, median of '
          f'{settings.repeats} after {settings.warmup} warm-up runs')

    stderr = Console(stderr=True)
    extra = {}
    with make_progress(stderr) as progress:
        task = progress.add_task(
            'models', total=bench.count_work(len(specs), settings))

        def advance(description: str) -> None:
            progress.update(task, advance=1, description=description)

        results = bench.run_benchmark(specs, settings, progress=advance)

        profiles = {}
        compiled_profiles = {}
        if args.profile:
            per_model = 3 if settings.compile else 2
            ptask = progress.add_task(
                'profile', total=per_model * (len(specs) + 2))
            for spec in bench.baseline_specs() + specs:
                runner = bench.ModelRunner(spec, settings)
                modes = ('inference', 'train') if runner.trains else (
                    'inference', )
                profiles[spec.name] = {
                    mode: bench.profile_modules(runner, mode=mode)
                    for mode in modes
                }
                progress.update(ptask, advance=2, description=spec.name)
                if settings.compile:
                    # Dynamo reuses the graphs of the timed runs (the
                    # parameters are graph inputs): nothing recompiles.
                    runner = bench.ModelRunner(spec, settings, compiled=True)
                    compiled_profiles[runner.name] = \
                        bench.profile_compiled(runner)
                    progress.update(ptask, advance=1, description=runner.name)
            extra['profiles'] = profiles
            if compiled_profiles:
                extra['compiled_profiles'] = compiled_profiles

        pipeline_results = None
        if args.pipeline:
            psettings = pipe.PipelineSettings(
                num_segments=settings.num_segments,
                repeats=args.pipeline_repeats,
                img_size=settings.img_size)
            videos = pipe.find_videos(args.videos)
            ptask = progress.add_task('pipeline', total=psettings.repeats)
            pipeline_results = pipe.run_pipeline_benchmark(
                videos,
                psettings,
                progress=lambda d: progress.update(ptask, advance=1))
            extra['pipeline'] = pipe.pipeline_results_to_json(
                pipeline_results, psettings, videos)

    machine['load_average_end'] = list(os.getloadavg())
    print()
    print(bench.format_table(results))
    if settings.bytes:
        print()
        print(bench.format_bytes(results))
    for name, modes in profiles.items():
        for mode, rows in modes.items():
            print()
            print(bench.format_profile(f'{name} ({mode})', rows,
                                       top=args.profile_top))
    for name, profile in compiled_profiles.items():
        print()
        print(bench.format_compiled_profile(name, profile,
                                            top=args.profile_top))
    if pipeline_results is not None:
        print()
        print(f'data pipeline, one worker, {len(videos)} videos x '
              f'{psettings.repeats} clips, decord (1 thread):')
        print(pipe.format_pipeline_table(pipeline_results))

    record = bench.results_to_json(results, settings, machine, extra)
    out_dir = osp.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(record, f, indent=2)
    print()
    print(f"load average at end: "
          f"{', '.join(f'{x:.2f}' for x in machine['load_average_end'])}")
    summary = bench.summary_line(results)
    if pipeline_results is not None:
        summary += (f"; pipeline TDN/TSN clips/s: decode "
                    f"{pipe.throughput_ratios(pipeline_results)['decode']:.2f}"
                    f", train "
                    f"{pipe.throughput_ratios(pipeline_results)['train']:.2f}")
    print(f'summary ({threads} threads): {summary} -> {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
