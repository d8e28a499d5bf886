# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The GPU check: what users run on a GPU, in one command, within minutes.

On one CUDA GPU (``python tools/analysis/gpu_check.py``; the wrapper
``tools/analysis/gpu_check.sh`` first installs the carried wheels):

1. **amp**: fp16 autocast forward and backward (``GradScaler``) of TDN-R50
   and TDRL-R50 in training mode: finite loss and gradients, and the fp16
   eval scores against fp32 (relative error);
2. **runner**: one MMEngine ``Runner`` iteration of TDN with
   ``AmpOptimWrapper`` (fp16);
3. **ddp**: a 1-process NCCL ``DistributedDataParallel`` training step;
4. **onnx**: ``torch.onnx.export`` of TDN (``ExportableRecognizer`` of
   ``tools/deployment/export_onnx.py``) on CUDA tensors, and onnxruntime
   (CPU) against the CUDA scores when onnxruntime is installed;
5. **benchmark**: inference of TSN, TSM, TDN, TDN deployed, TDRL and TDN in
   the release's layout, eager and ``torch.compile`` (inductor, static
   shapes), fp16 and bf16 autocast, batch 8 and 16 (R50, T=8, 224 px;
   CUDA-event timing, median of ``--repeats``): ms per video and videos/s,
   and TDN/TSN.

Each step is recorded as ``ok``/``FAILED``/``skipped`` with its reason, and
a failure does not stop the others. The compiled cells come last, in order
of importance (fp16 batch 16 first), and stop when ``--budget`` seconds
have passed since the start (cells not run are marked ``budget``): with a
cold inductor cache each compile takes tens of seconds. The benchmark table
is printed last; ``--out`` writes everything as JSON.

``--smoke`` runs the same code on the CPU at a tiny size, so that it is
tested without a GPU (``tests/test_tools/test_gpu_check.py``): ResNet-18
(the release layout stays R50), T=2, 64 px, batch 2, bf16 autocast
instead of fp16, gloo instead of NCCL, 2 timed runs, and only TSN compiled
with dynamo's ``eager`` backend (tracing, no code generation).

Developer tooling, not part of the installed package.
"""
import argparse
import copy
import dataclasses
import json
import math
import os
import os.path as osp
import socket
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn

HERE = osp.dirname(osp.abspath(__file__))
REPO_ROOT = osp.dirname(osp.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import benchmark_lib as bench  # noqa: E402

MODELS = (
    ('tsn', 'tsn_r50'),
    ('tsm', 'tsm_r50'),
    ('tdn', 'tdn_r50'),
    ('tdn_deploy', 'tdn_deploy=tdn_r50,deploy'),
    ('tdrl', 'tdrl_r50'),
    ('tdn_release', 'tdn_release'),
)


class Setup:
    """Sizes and devices of a real (GPU) or smoke (CPU) run."""

    def __init__(self, smoke: bool, repeats: Optional[int] = None) -> None:
        self.smoke = smoke
        cuda = torch.cuda.is_available() and not smoke
        if not smoke and not cuda:
            raise SystemExit(
                'gpu_check.py: no CUDA device is visible (torch '
                f'{torch.__version__}, CUDA build: {torch.version.cuda}). '
                'Run it on a GPU machine with a CUDA build of torch, or use '
                '--smoke for the CPU check at a tiny size.')
        self.device = torch.device('cuda' if cuda else 'cpu')
        self.settings = bench.BenchmarkSettings(
            depth=18 if smoke else 50,
            num_segments=2 if smoke else 8,
            img_size=64 if smoke else 224,
            train_batch=2,
            threads=torch.get_num_threads(),
            num_classes=5 if smoke else 400)
        # fp16 autocast works on CPUs too (torch >= 2.1); bf16 training
        # is checked on the GPU only (see check_amp).
        self.amp_dtype = torch.float16
        # MMEngine's AmpOptimWrapper refuses to be built without a GPU.
        self.optim_wrapper = 'OptimWrapper' if smoke else 'AmpOptimWrapper'
        self.bench_dtypes = ((torch.bfloat16, ) if smoke else
                             (torch.float16, torch.bfloat16))
        self.batches = (2, ) if smoke else (8, 16)
        self.repeats = repeats or (2 if smoke else 10)
        self.warmup = 1 if smoke else 3
        self.backend = 'nccl' if cuda else 'gloo'
        self.compile_backend = 'eager' if smoke else 'inductor'
        self.compiled_models = ('tsn', ) if smoke else tuple(
            name for name, _ in MODELS)

    def settings_for(self, target: str) -> bench.BenchmarkSettings:
        # The release exists as ResNet-50 only.
        if target == bench.RELEASE_NAME and self.settings.depth != 50:
            return dataclasses.replace(self.settings, depth=50)
        return self.settings

    def describe(self) -> str:
        s = self.settings
        return (f'{self.device.type}, R{s.depth}, T={s.num_segments}, '
                f'{s.img_size} px')


def build(target: str, setup: Setup) -> nn.Module:
    """A recognizer of the benchmark's kind (``benchmark_lib``) on the
    device; ``deploy`` specs reparameterised."""
    spec = bench.parse_model_spec(target)
    if spec.name in bench.BASELINE_NAMES:
        spec = next(s for s in bench.baseline_specs() if s.name == spec.name)
    settings = setup.settings_for(spec.config.get('type', ''))
    torch.manual_seed(0)
    model = bench.build_model(bench.apply_settings(spec.config, settings))
    if spec.deploy:
        model.eval()
        bench.switch_to_deploy(model)
    return model.to(setup.device)


def inputs_for(model: nn.Module, setup: Setup, batch: int,
               seed: int = 0) -> tuple:
    frames, samples = bench.make_inputs(model, setup.settings, batch, seed)
    samples = [s.to(setup.device) for s in samples]
    return frames.to(setup.device), samples


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def autocast(setup: Setup, dtype: torch.dtype):
    return torch.autocast(setup.device.type, dtype=dtype)


# --------------------------------------------------------------------------
# Checks: each returns a short result string or raises.


def check_amp(setup: Setup, target: str,
              dtype: Optional[torch.dtype] = None) -> str:
    """AMP training steps (autocast + GradScaler for fp16) until one is
    taken; then the eval scores under autocast against fp32.

    fp16's ``GradScaler`` starts at a scale of 2^16 and skips the steps
    whose scaled gradients overflow, halving the scale: up to 4 steps may
    be skipped before the check fails.
    """
    dtype = dtype or setup.amp_dtype
    model = build(target, setup)
    frames, samples = inputs_for(model, setup, setup.settings.train_batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    # The smoke run starts at a low scale to skip no step (time).
    scaler = torch.amp.GradScaler(
        setup.device.type,
        init_scale=2.**8 if setup.smoke else 2.**16,
        enabled=dtype == torch.float16)
    model.train()
    for skipped in range(5):
        optimizer.zero_grad(set_to_none=True)
        with autocast(setup, dtype):
            losses = model(frames, samples, mode='loss')
            loss, _ = model.parse_losses(losses)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f'{dtype} loss is {loss.item()}')
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        finite = all(bool(torch.isfinite(g).all()) for g in grads)
        scaler.step(optimizer)  # skipped if not finite
        scaler.update()
        if finite:
            break
    else:
        raise RuntimeError(f'{dtype} gradients overflowed in 5 steps')
    model.eval()
    with torch.no_grad():
        reference = model(frames, mode='tensor').float()
        with autocast(setup, dtype):
            low = model(frames, mode='tensor').float()
    error = float((low - reference).abs().max() /
                  reference.abs().max().clamp_min(1e-12))
    limit = 0.05 if dtype == torch.float16 else 0.1
    if not error < limit:
        raise RuntimeError(f'{dtype} scores differ from fp32 by '
                           f'{error:.3g} (relative, limit {limit})')
    return (f'{dtype_name(dtype)}: loss {loss.item():.3f}, step taken after '
            f'{skipped} skipped, {len(grads)} finite grads; scores vs fp32 '
            f'{error:.2e}')


class _FrameDataset(torch.utils.data.Dataset):
    """Random uint8 clips in the layout ``PackActionInputs`` produces."""

    metainfo = dict(classes=None)

    def __init__(self, frames: int, size: int, num_classes: int,
                 length: int = 4) -> None:
        self.frames, self.size = frames, size
        self.num_classes, self.length = num_classes, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index):
        from mmaction.structures import ActionDataSample
        gen = torch.Generator().manual_seed(index)
        clip = torch.randint(
            0, 256, (self.frames, 3, self.size, self.size),
            dtype=torch.uint8, generator=gen)
        sample = ActionDataSample().set_gt_label(index % self.num_classes)
        return dict(inputs=clip, data_samples=sample)


def check_runner(setup: Setup, work_dir: str) -> str:
    """One MMEngine Runner iteration with AmpOptimWrapper."""
    from mmengine.runner import Runner

    model = build('tdn_r50', setup)
    model.data_preprocessor = _preprocessor(model)
    frames = setup.settings.num_segments * bench.frames_per_segment(model)
    dataset = _FrameDataset(frames, setup.settings.img_size,
                            setup.settings.num_classes)
    runner = Runner(
        model=model,
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=dataset,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate'),
            batch_size=2,
            num_workers=0),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=1),
        optim_wrapper=dict(
            type=setup.optim_wrapper,
            optimizer=dict(type='SGD', lr=1e-3, momentum=0.9),
            **(dict(dtype='float16')
               if setup.optim_wrapper == 'AmpOptimWrapper' else {})),
        default_hooks=dict(checkpoint=None, logger=None),
        default_scope='mmaction',
        log_level='WARNING')
    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    if not math.isfinite(loss):
        raise RuntimeError(f'loss is {loss}')
    return f'1 iteration, {setup.optim_wrapper}, loss {loss:.3f}'


def _preprocessor(model: nn.Module) -> nn.Module:
    from mmaction.models import ActionDataPreprocessor
    return ActionDataPreprocessor(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        format_shape='NCHW').to(next(model.parameters()).device)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def check_ddp(setup: Setup) -> str:
    """A 1-process DistributedDataParallel training step."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    dist.init_process_group(
        setup.backend, init_method=f'tcp://127.0.0.1:{_free_port()}',
        rank=0, world_size=1)
    try:
        model = build('tdn_r50', setup)
        frames, samples = inputs_for(model, setup, 2)
        ddp = DistributedDataParallel(
            model,
            device_ids=[setup.device.index or 0]
            if setup.device.type == 'cuda' else None)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=1e-3)
        model.train()
        losses = ddp(frames, samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        optimizer.step()
        synchronize(setup.device)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f'loss is {loss.item()}')
        return f'{setup.backend}, 1 process, loss {loss.item():.3f}'
    finally:
        dist.destroy_process_group()


def check_onnx(setup: Setup, work_dir: str) -> str:
    """ONNX export of TDN on device tensors; onnxruntime (CPU) vs torch."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return 'skipped: onnx is not installed (pip install onnx)'
    tool = _load_export_tool()
    # TF32 convolutions (cuDNN's default) differ from onnxruntime's fp32
    # by ~1e-3: compare exact fp32.
    tf32 = (torch.backends.cudnn.allow_tf32,
            torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return _export_and_compare(setup, work_dir, tool)
    finally:
        (torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = tf32


def _export_and_compare(setup: Setup, work_dir: str, tool) -> str:
    model = build('tdn_r50', setup)
    model.data_preprocessor = _preprocessor(model)
    wrapper = tool.ExportableRecognizer(model.eval()).eval()
    frames = setup.settings.num_segments * bench.frames_per_segment(model)
    size = setup.settings.img_size
    example = torch.rand(1, frames, 3, size, size,
                         device=setup.device) * 255
    path = osp.join(work_dir, 'tdn.onnx')
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        torch.onnx.export(
            wrapper, (example, ), path, input_names=['inputs'],
            output_names=['scores'],
            dynamic_axes={'inputs': {0: 'batch'}, 'scores': {0: 'batch'}},
            opset_version=17, dynamo=False)
        want = wrapper(example).float().cpu()
    result = f'exported on {example.device} ({os.path.getsize(path)} B)'
    try:
        import onnxruntime as ort
    except ImportError:
        return result + '; onnxruntime not installed, not compared'
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = torch.from_numpy(
        session.run(None, {'inputs': example.cpu().numpy()})[0])
    error = float((got - want).abs().max() / want.abs().max())
    if not error < 1e-3:
        raise RuntimeError(f'onnxruntime differs from torch by {error:.3g}')
    return result + f'; onnxruntime vs torch {error:.1e}'


def _load_export_tool():
    import importlib.util
    name = '_gpu_check_export_onnx'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, osp.join(REPO_ROOT, 'tools', 'deployment', 'export_onnx.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# --------------------------------------------------------------------------
# Benchmark


def time_inference(call: Callable, frames: torch.Tensor, setup: Setup,
                   dtype: torch.dtype) -> List[float]:
    """Seconds per call of ``call(frames)`` under autocast (CUDA events
    on a GPU)."""

    def once():
        with torch.inference_mode(), autocast(setup, dtype):
            return call(frames, mode='tensor')

    for _ in range(setup.warmup):
        once()
    synchronize(setup.device)
    times = []
    for _ in range(setup.repeats):
        if setup.device.type == 'cuda':
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            once()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            begin = time.perf_counter()
            once()
            times.append(time.perf_counter() - begin)
    return times


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float16: 'fp16', torch.bfloat16: 'bf16'}[dtype]


def run_benchmark(setup: Setup, deadline: float,
                  log: Callable[[str], None]) -> List[Dict]:
    """Rows ``{model, mode, dtype, batch, ms_per_video, videos_per_s,
    status}``: every eager cell, then the compiled cells, most important
    first, while time is left."""
    rows = []
    models = {}
    for name, target in MODELS:
        try:
            models[name] = build(target, setup).eval()
        except Exception as exc:  # noqa: BLE001  (recorded, run goes on)
            rows.append(dict(model=name, mode='-', dtype='-', batch='-',
                             status=f'FAILED to build: {exc}'))

    def cell(name, mode, dtype, batch, call):
        row = dict(model=name, mode=mode, dtype=dtype_name(dtype),
                   batch=batch)
        if time.monotonic() > deadline:
            row['status'] = 'budget'
            return row
        try:
            frames, _ = inputs_for(models[name], setup, batch)
            seconds = statistics.median(
                time_inference(call, frames, setup, dtype))
            row.update(ms_per_video=1e3 * seconds / batch,
                       videos_per_s=batch / seconds, status='ok')
        except Exception as exc:  # noqa: BLE001
            row['status'] = f'FAILED: {type(exc).__name__}: {exc}'[:300]
        log(f"benchmark {name} {mode} {row['dtype']} batch {batch}: "
            f"{row['status']}")
        return row

    for dtype in setup.bench_dtypes:
        for batch in setup.batches:
            for name, model in models.items():
                rows.append(cell(name, 'eager', dtype, batch, model))
    settings = copy.copy(setup.settings)
    settings.compile_backend = setup.compile_backend
    for batch in sorted(setup.batches, reverse=True):
        for dtype in setup.bench_dtypes:
            for name in setup.compiled_models:
                if name not in models:
                    continue
                # A fresh wrapper per cell: static shapes and dtype.
                compiled = bench.compile_model(models[name], settings)
                rows.append(cell(name, 'compiled', dtype, batch, compiled))
    return rows


def format_table(rows: List[Dict]) -> str:
    """One Markdown table: a row per model, mode and dtype; per batch ms
    per video and videos/s; TDN/TSN ms per video."""
    batches = sorted({r['batch'] for r in rows if r['batch'] != '-'})
    by_key = {(r['model'], r['mode'], r['dtype'], r['batch']): r
              for r in rows}
    header = '| model | mode | dtype | ' + ' | '.join(
        f'b{b} ms/video | b{b} videos/s | b{b} xTSN' for b in batches) + ' |'
    lines = [header, '|' + '---|' * (header.count('|') - 1)]
    seen = []
    for r in rows:
        key = (r['model'], r['mode'], r['dtype'])
        if r['batch'] == '-' or key in seen:
            continue
        seen.append(key)
    order = {name: i for i, (name, _) in enumerate(MODELS)}
    seen.sort(key=lambda k: (k[1] != 'eager', k[2], order.get(k[0], 99)))
    for model, mode, dtype in seen:
        cells = []
        for b in batches:
            r = by_key.get((model, mode, dtype, b))
            base = by_key.get(('tsn', mode, dtype, b))
            if r is None or r.get('status') != 'ok':
                status = '-' if r is None else r['status'].split(':')[0]
                cells += [status, '-', '-']
                continue
            ratio = (f"{r['ms_per_video'] / base['ms_per_video']:.2f}"
                     if base and base.get('status') == 'ok' else '-')
            cells += [f"{r['ms_per_video']:.2f}",
                      f"{r['videos_per_s']:.1f}", ratio]
        lines.append(f'| {model} | {mode} | {dtype} | ' + ' | '.join(cells) +
                     ' |')
    return '\n'.join(lines)


# --------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='CUDA checks (AMP, Runner, DDP, ONNX) and the GPU '
        'benchmark of TSN/TSM/TDN/TDRL; --smoke: the same on the CPU at a '
        'tiny size.')
    parser.add_argument('--smoke', action='store_true',
                        help='CPU, tiny sizes, bf16, gloo (for the tests)')
    parser.add_argument('--budget', type=float, default=360.,
                        help='seconds after which no further benchmark '
                        'cell starts (default 360: with the last compile '
                        'in flight the check stays under the 8 minutes '
                        'gpu_check.sh allows)')
    parser.add_argument('--repeats', type=int, default=None,
                        help='timed runs per cell (default 10; smoke 2)')
    parser.add_argument('--skip', nargs='*', default=[],
                        choices=['amp', 'runner', 'ddp', 'onnx',
                                 'benchmark'],
                        help='checks to leave out')
    parser.add_argument('--out', default='work_dirs/gpu_check.json',
                        help='JSON file to write')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    setup = Setup(args.smoke, args.repeats)
    import mmaction_tdx  # noqa: F401  (registers our models)
    device = (torch.cuda.get_device_name(setup.device)
              if setup.device.type == 'cuda' else 'CPU (smoke)')
    print(f'gpu_check: {device}; torch {torch.__version__} (CUDA '
          f'{torch.version.cuda}); {setup.describe()}', flush=True)

    def log(message: str) -> None:
        print(f'[{time.monotonic() - start:6.1f} s] {message}', flush=True)

    checks: Dict[str, str] = {}
    failed = 0
    with tempfile.TemporaryDirectory() as work_dir:
        steps = [
            ('amp tdn', 'amp', lambda: check_amp(setup, 'tdn_r50')),
            ('amp tdrl', 'amp', lambda: check_amp(setup, 'tdrl_r50')),
        ]
        if not setup.smoke:
            # bf16 AMP training, as on Ampere and later GPUs.
            steps.append(('amp tdn bf16', 'amp', lambda: check_amp(
                setup, 'tdn_r50', torch.bfloat16)))
        steps += [
            ('runner', 'runner',
             lambda: check_runner(setup, osp.join(work_dir, 'runner'))),
            ('ddp', 'ddp', lambda: check_ddp(setup)),
            ('onnx', 'onnx', lambda: check_onnx(setup, work_dir)),
        ]
        for label, kind, step in steps:
            if kind in args.skip:
                continue
            try:
                checks[label] = 'ok: ' + step()
            except Exception as exc:  # noqa: BLE001  (recorded, go on)
                failed += 1
                checks[label] = f'FAILED: {type(exc).__name__}: {exc}'
                traceback.print_exc()
            log(f'{label}: {checks[label]}')
    rows = []
    if 'benchmark' not in args.skip:
        rows = run_benchmark(setup, start + args.budget, log)
        failed += sum(r['status'].startswith('FAILED') for r in rows)
    record = dict(device=device, torch=torch.__version__,
                  cuda=torch.version.cuda, smoke=args.smoke,
                  settings=vars(setup.settings), checks=checks,
                  benchmark=rows, seconds=time.monotonic() - start)
    out_dir = osp.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(record, f, indent=2, default=str)
    print()
    for label, result in checks.items():
        print(f'{label:>9}: {result}')
    print(f'{failed} failed; {time.monotonic() - start:.0f} s; JSON: '
          f'{args.out}')
    if rows:
        print()
        print(f'inference, {setup.describe()}, autocast, median of '
              f'{setup.repeats}:')
        print(format_table(rows))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
