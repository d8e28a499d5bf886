# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Speed, memory and FLOPs of video recognizers, beside MMAction2's own.

:func:`run_benchmark` builds every model of a list together with
MMAction2's TSN-R50 and TSM-R50 (from MMAction2's ``_base_`` model configs)
at the same depth, segment count and resolution, and measures in one
process, interleaved (repeat ``r`` of every model before repeat ``r + 1``
of any, so a change of machine load hits all models alike):

* **inference**: one view of one video, ``model(inputs, mode='tensor')``
  (backbone and head) in ``eval`` mode under ``torch.inference_mode``;
* **training step**: forward with the loss, ``backward`` and an SGD step,
  for ``train_batch`` videos in ``train`` mode;
* **peak memory**: the most tensor memory alive at once during one
  inference and one training step, above what was alive before (weights,
  inputs, optimizer state from earlier steps). It is read from the
  allocation events of :mod:`torch.profiler` (``profile_memory=True``),
  i.e. exact byte counts of PyTorch's CPU allocator, independent of the
  C library's caching and of other processes on the machine (unlike RSS).
  Scratch memory that oneDNN allocates outside PyTorch's allocator is not
  included;
* **FLOPs** of one inference view with MMEngine's ``FlopAnalyzer``
  (one multiply-add = one FLOP, as in the papers' tables), and the achieved
  GFLOP/s, FLOPs over the median inference latency.
* **bytes moved** (``BenchmarkSettings.bytes``): bytes read plus written
  by one inference, eager per ATen op and module type, compiled by
  inductor's own accounting (``bytes_moved.py``): machine-independent.

Times are medians over ``repeats`` runs after ``warmup`` runs; the spread
is the inter-quartile range. Everything runs with a fixed number of
intra-op threads (:func:`set_threads`). :func:`profile_modules` shows where
the time of a forward pass goes, per module type (forward hooks);
:func:`profile_compiled` where a compiled inference's goes, per extern
convolution class and inductor fused-kernel family (:mod:`torch.profiler`
events of kernels compiled with ``BenchmarkSettings.kernel_profile``).

With ``BenchmarkSettings.compile`` every model (baselines included) is
measured a second time as ``torch.compile(model)`` (inductor), interleaved
with the eager ones, and compiled rows are compared with the compiled
baselines. A spec may ask for the one-time inference reparameterisation
(``deploy``: every ``switch_to_deploy()``; inference only), and
``tdn_release`` is TDN in the official release's layout (the plain
re-statement of the release's model in ``tools/convert/release_tdn.py``,
which the converter's round-trip test also uses).

Developer tooling: lives beside ``tools/analysis/benchmark.py``, not in the
installed package.
"""
import copy
import os
import os.path as osp
import platform
import re
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config

if osp.dirname(osp.abspath(__file__)) not in sys.path:
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import bytes_moved  # noqa: E402  (beside this file, developer tooling)

BASELINE_NAMES = ('tsn_r50', 'tsm_r50')
COMPILED = ' (compiled)'
RELEASE_NAME = 'tdn_release'
OUR_MODEL_CONFIGS = {
    'tdn_r50': 'configs/_base_/models/tdn_r50.py',
    'tdrl_r50': 'configs/_base_/models/tdrl_r50.py',
}
# tools/analysis/ -> the repository (configs/, tools/convert/).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@dataclass
class BenchmarkSettings:
    """What is measured and how.

    Args:
        depth (int): ResNet depth of every model (baselines included).
        num_segments (int): ``T``, segments per video.
        img_size (int): Square input resolution.
        train_batch (int): Videos per training step.
        repeats (int): Timed runs per measurement (median and spread).
        warmup (int): Untimed runs before them.
        threads (int): Intra-op threads (``torch.set_num_threads``).
        num_classes (int): Classes of every head.
        compile (bool): Also measure every model's inference under
            ``torch.compile``.
        compile_train (bool): With ``compile``, also the compiled
            training step (inductor then compiles the backward graphs as
            well: many minutes per R50 model on 2 cores).
        compile_backend (str): ``torch.compile``'s ``backend`` (a name
            known to ``torch._dynamo``). Defaults to ``'inductor'``.
        bytes (bool): Also count the bytes read plus written by one
            inference (``bytes_moved.py``): eager per ATen op, compiled
            by inductor's own accounting (the compilation then skips
            inductor's caches).
        kernel_profile (bool): Compile with inductor's
            ``cpp.enable_kernel_profile``, so that every generated C++
            kernel records a :mod:`torch.profiler` event (needed by
            :func:`profile_compiled`). Set per compiled call, never in the
            process's config. With the profiler off the markers cost a
            check of a thread-local flag per kernel call.
    """
    depth: int = 50
    num_segments: int = 8
    img_size: int = 224
    train_batch: int = 2
    repeats: int = 7
    warmup: int = 2
    threads: int = 2
    num_classes: int = 400
    compile: bool = False
    compile_train: bool = False
    compile_backend: str = 'inductor'
    bytes: bool = False
    kernel_profile: bool = False


@dataclass
class ModelSpec:
    """A model to benchmark.

    Args:
        name (str): Label in the tables.
        config (dict): The ``model`` dict of an MMAction2 config, or for
            ``tdn_release`` just its ``backbone`` settings.
        deploy (bool): Apply every ``switch_to_deploy()`` (inference
            only; no training step is measured).
    """
    name: str
    config: dict
    deploy: bool = False


@dataclass
class TimeStats:
    """Summary of repeated timings, in milliseconds."""
    median: float
    q1: float
    q3: float
    minimum: float
    maximum: float
    samples: List[float] = field(default_factory=list)

    @classmethod
    def from_seconds(cls, seconds: Sequence[float]) -> 'TimeStats':
        ms = sorted(s * 1e3 for s in seconds)
        if len(ms) >= 2:
            q1, _, q3 = statistics.quantiles(ms, n=4, method='inclusive')
        else:
            q1 = q3 = ms[0]
        return cls(statistics.median(ms), q1, q3, ms[0], ms[-1], ms)

    @property
    def relative_spread(self) -> float:
        """Half the inter-quartile range over the median."""
        return (self.q3 - self.q1) / 2 / self.median if self.median else 0.


@dataclass
class ModelResult:
    """Everything measured for one model; times in ms, memory in MiB."""
    name: str
    backbone: str
    frames_per_view: int
    params_m: float
    gflops: float
    inference: TimeStats
    train_step: Optional[TimeStats]
    inference_peak_mib: float
    train_peak_mib: Optional[float]
    compiled: bool = False
    # Bytes read + written by one inference (eager: ATen ops; compiled:
    # inductor's kernels) and, eager only, the self bytes by module type.
    inference_bytes: Optional[int] = None
    bytes_by_module: Optional[Dict[str, int]] = None

    @property
    def gflops_per_s(self) -> float:
        """Achieved GFLOP/s of inference (FLOPs / median latency)."""
        return self.gflops / (self.inference.median / 1e3)


# --------------------------------------------------------------------------
# Environment


def set_threads(threads: int) -> int:
    """Fix PyTorch's intra-op threads (and one inter-op thread).

    Returns:
        int: The intra-op thread count now in force.
    """
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # Only settable before the first parallel work; harmless.
    return torch.get_num_threads()


def cpu_name() -> str:
    """The CPU's model name, from ``/proc/cpuinfo`` where available."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> Dict:
    """The facts a reader needs to compare runs across machines."""
    import mmaction
    import mmengine
    return dict(
        cpu=cpu_name(),
        logical_cpus=os.cpu_count(),
        load_average=list(os.getloadavg()),
        platform=platform.platform(),
        python=platform.python_version(),
        torch=torch.__version__,
        mmaction2=mmaction.__version__,
        mmengine=mmengine.__version__,
        mkldnn=torch.backends.mkldnn.is_available(),
        intra_op_threads=torch.get_num_threads(),
        interop_threads=torch.get_num_interop_threads())


# --------------------------------------------------------------------------
# Model specs


def mmaction_base_model(name: str) -> dict:
    """The ``model`` dict of MMAction2's ``_base_/models/<name>.py``."""
    import mmaction
    path = osp.join(
        osp.dirname(mmaction.__file__), '.mim', 'configs', '_base_',
        'models', f'{name}.py')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'MMAction2 base config {path} not found; is mmaction2 (with '
            'its .mim configs) installed?')
    return Config.fromfile(path)['model'].to_dict()


def baseline_specs() -> List[ModelSpec]:
    """MMAction2's TSN-R50 and TSM-R50, unchanged but for the settings."""
    return [ModelSpec(name, mmaction_base_model(name))
            for name in BASELINE_NAMES]


def _parse_value(text: str):
    import ast
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _set_dotted(cfg: dict, key: str, value) -> None:
    *parents, last = key.split('.')
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def parse_model_spec(text: str) -> ModelSpec:
    """Parse ``[LABEL=]TARGET[,KEY=VALUE...]`` into a :class:`ModelSpec`.

    ``TARGET`` is a config file (its ``model`` is used), a short name of
    ours (``tdn_r50``, ``tdrl_r50``), a baseline (``tsn_r50``,
    ``tsm_r50``), ``tdn_release`` (TDN-R50 in the release's layout) or a
    registered backbone type (e.g. ``ResNetTDRL``), which gets a
    ``SegmentRecognizer2D`` with a ``TSNHead``. Each ``KEY=VALUE`` sets a
    dotted key of the model dict, e.g. ``cls_head.loss_td=None``; values are
    Python literals. The bare word ``deploy`` applies
    ``switch_to_deploy()`` (e.g. ``tdn_deploy=tdn_r50,deploy``).
    """
    label, _, rest = text.partition('=') if '=' in text.split(',')[0] \
        else ('', '', text)
    target, *overrides = rest.split(',')
    deploy = 'deploy' in overrides
    overrides = [item for item in overrides if item != 'deploy']
    if target == RELEASE_NAME:
        config = dict(type=RELEASE_NAME, backbone=dict(depth=50))
    elif target in OUR_MODEL_CONFIGS:
        config = Config.fromfile(osp.join(
            REPO_ROOT, OUR_MODEL_CONFIGS[target]))['model'].to_dict()
    elif target in BASELINE_NAMES:
        config = mmaction_base_model(target)
    elif target.endswith('.py'):
        config = Config.fromfile(target)['model'].to_dict()
    else:
        config = dict(
            type='SegmentRecognizer2D',
            backbone=dict(type=target, depth=50),
            cls_head=dict(
                type='TSNHead',
                num_classes=400,
                in_channels=2048,
                consensus=dict(type='AvgConsensus', dim=1),
                average_clips='prob'))
    for item in overrides:
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(
                f'Model spec {text!r}: override {item!r} is not KEY=VALUE.')
        _set_dotted(config, key.strip(), _parse_value(value.strip()))
    name = label or osp.splitext(osp.basename(target))[0]
    return ModelSpec(name, config, deploy=deploy)


def default_specs() -> List[ModelSpec]:
    """Ours at their defaults, and TDRL with the TD loss switched off."""
    return [
        parse_model_spec('tdn_r50'),
        parse_model_spec('tdrl_r50'),
        parse_model_spec('tdrl_r50_no_td=tdrl_r50,cls_head.loss_td=None'),
    ]


def apply_settings(config: dict, settings: BenchmarkSettings) -> dict:
    """Return ``config`` at the benchmark's depth, ``T`` and class count,
    without pretrained weights or data preprocessing."""
    config = copy.deepcopy(config)
    backbone = config['backbone']
    if config.get('type') == RELEASE_NAME:
        backbone.update(depth=settings.depth,
                        num_segments=settings.num_segments)
        config['num_classes'] = settings.num_classes
        return config
    backbone['pretrained'] = None
    backbone['depth'] = settings.depth
    if 'num_segments' in backbone or backbone['type'] != 'ResNet':
        backbone['num_segments'] = settings.num_segments
    head = config['cls_head']
    head['num_classes'] = settings.num_classes
    if 'in_channels' in head:
        head['in_channels'] = 2048 if settings.depth >= 50 else 512
    if head['type'] == 'TSMHead':
        head['num_segments'] = settings.num_segments
    # The models are fed float frames directly (normalisation costs the
    # same per frame for every model), so the preprocessor is never run.
    config['data_preprocessor'] = dict(type='ActionDataPreprocessor')
    return config


class ReleaseLayoutTDN(nn.Module):
    """TDN in the official release's layout behind the calls
    :class:`ModelRunner` makes of a recognizer.

    The network is ``ReleaseTSN`` of ``tools/convert/release_tdn.py``
    (the release's ``TDN_Net`` + TSN head restated with its module names;
    the converter's round-trip test checks that ours scores like it). Input
    ``(N, T*5, 3, H, W)``, the release's 5 frames per segment.
    """

    frames_per_segment = 5

    def __init__(self, depth: int, num_segments: int,
                 num_classes: int) -> None:
        super().__init__()
        if depth != 50:
            raise ValueError('tdn_release exists for ResNet-50 only (the '
                             f'release has no other depth), got {depth}; '
                             'use --depth 50.')
        import importlib.util
        path = osp.join(REPO_ROOT, 'tools', 'convert', 'release_tdn.py')
        name = '_release_tdn'
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            # Importable by name: torch.compile resolves the globals of
            # the module's code through ``sys.modules``.
            sys.modules[name] = module
            spec.loader.exec_module(module)
        self.net = module.ReleaseTSN(num_segments, num_classes=num_classes)
        # The runner reads the backbone's name and frames per segment.
        self.backbone = self.net.base_model
        self.backbone.frames_per_segment = self.frames_per_segment

    def forward(self, inputs, data_samples=None, mode='tensor'):
        n, frames, c, h, w = inputs.shape
        x = inputs.reshape(n * frames // self.frames_per_segment,
                           self.frames_per_segment * c, h, w)
        scores = self.net(x)
        if mode != 'loss':
            return scores
        labels = torch.stack([s.gt_label for s in data_samples]).view(-1)
        return dict(loss_cls=nn.functional.cross_entropy(scores, labels))

    @staticmethod
    def parse_losses(losses):
        return sum(losses.values()), {}


def switch_to_deploy(model: nn.Module) -> List[str]:
    """The library's ``switch_to_deploy`` (every outermost one below
    ``model``), refusing a model that has none."""
    from mmaction_tdx.apis import switch_to_deploy as deploy_all
    done = deploy_all(model)
    if not done:
        raise ValueError(
            f'{type(model).__name__} has no module with switch_to_deploy(); '
            'drop `deploy` from the model spec.')
    return done


def build_model(config: dict) -> nn.Module:
    """Build a recognizer (our package's registrations included)."""
    if config.get('type') == RELEASE_NAME:
        return ReleaseLayoutTDN(num_classes=config['num_classes'],
                                **config['backbone'])
    from mmaction.registry import MODELS
    from mmaction.utils import register_all_modules
    from mmengine.registry import DefaultScope

    import mmaction_tdx  # noqa: F401  (registers our models)
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(config)
    # No ``init_weights()``: speed does not depend on the values, and
    # MMAction2's ResNetTSM would try to download ImageNet weights.
    return model


def frames_per_segment(model: nn.Module) -> int:
    return int(getattr(model.backbone, 'frames_per_segment', 1))


# --------------------------------------------------------------------------
# Measurements


def make_inputs(model: nn.Module, settings: BenchmarkSettings,
                batch: int, seed: int = 0) -> Tuple[torch.Tensor, list]:
    """Random ``(batch, T * L, 3, H, W)`` frames and labelled samples."""
    from mmaction.structures import ActionDataSample
    generator = torch.Generator().manual_seed(seed)
    frames = settings.num_segments * frames_per_segment(model)
    size = settings.img_size
    inputs = torch.randn(
        batch, frames, 3, size, size, generator=generator)
    labels = torch.randint(
        settings.num_classes, (batch, ), generator=generator)
    samples = [ActionDataSample().set_gt_label(int(label))
               for label in labels]
    return inputs, samples


def compile_model(model: nn.Module,
                  settings: BenchmarkSettings) -> Callable:
    """``torch.compile(model)`` with static shapes, as its own model.

    The models of one benchmark share code objects (``BaseModel.forward``,
    ``Recognizer2D.extract_feat``, MMAction2's ResNet blocks), and dynamo
    keeps its graphs per code object. With the default
    (``dynamic=None``), the second model through ``BaseModel.forward``
    with another frame count (TDN's 40 frames after TSN's 8) fails the
    size guard, and dynamo recompiles it with a *symbolic* frame axis:
    every ``(N*T) -> (N, T)`` view then carries expressions like
    ``s // (s // 8)`` that grow block by block, and tracing TDN-R50 did
    not finish in 27 minutes. ``dynamic=False`` compiles every model for
    its own fixed shapes, as a benchmark of one shape should; the
    recompile limit is raised so that dynamo does not quietly run a model
    eager once the shared code objects hold one graph per model and mode
    (``fail_on_recompile_limit_hit``: an error instead). With
    ``settings.kernel_profile`` inductor generates its C++ kernels with
    profiler events (``cpp.enable_kernel_profile``).
    """
    import contextlib

    import torch._dynamo
    import torch._inductor.config
    compiled = torch.compile(
        model, dynamic=False, backend=settings.compile_backend)

    def call(*args, **kwargs):
        # Per call (dynamo and inductor read them while compiling, on the
        # first call), so that the process's own settings stay as they
        # were.
        if settings.kernel_profile:
            kernels = torch._inductor.config.patch(
                {'cpp.enable_kernel_profile': True})
        else:
            kernels = contextlib.nullcontext()
        with torch._dynamo.config.patch(
                recompile_limit=64, fail_on_recompile_limit_hit=True), \
                kernels:
            return compiled(*args, **kwargs)

    return call


class ModelRunner:
    """Holds one model, its inputs and optimizer; runs the measured steps.

    Args:
        spec (ModelSpec): The model.
        settings (BenchmarkSettings): Shared settings.
    """

    def __init__(self, spec: ModelSpec, settings: BenchmarkSettings,
                 compiled: bool = False) -> None:
        self.spec = spec
        self.settings = settings
        self.compiled = compiled
        self.name = spec.name + (COMPILED if compiled else '')
        self.model = build_model(apply_settings(spec.config, settings))
        if spec.deploy:
            self.model.eval()
            switch_to_deploy(self.model)
        # Compiled once here; eval and train graphs are traced on first use
        # (during the warm-up runs).
        self.call = compile_model(self.model, settings) if compiled \
            else self.model
        self.view, _ = make_inputs(self.model, settings, batch=1)
        self.batch, self.samples = make_inputs(
            self.model, settings, batch=settings.train_batch, seed=1)
        # A tiny learning rate: the step must do the real work (momentum,
        # weight decay, update) but keep the weights where they were.
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=1e-6, momentum=0.9,
            weight_decay=1e-4)

    def infer(self) -> torch.Tensor:
        """One view of one video, backbone and head, in eval mode."""
        self.model.eval()
        with torch.inference_mode():
            return self.call(self.view, mode='tensor')

    @property
    def trains(self) -> bool:
        """A deployed (reparameterised) model is for inference only; a
        compiled one trains only with ``settings.compile_train``."""
        return not self.spec.deploy and (not self.compiled
                                         or self.settings.compile_train)

    def train_step(self) -> float:
        """Forward with loss, backward and optimizer step; the loss."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.call(self.batch, self.samples, mode='loss')
        loss, _ = self.model.parse_losses(losses)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def params_m(self) -> float:
        return sum(p.numel() for p in self.model.parameters()) / 1e6

    def gflops(self) -> float:
        """FLOPs of one inference view (``FlopAnalyzer``), in G."""
        from mmengine.analysis import FlopAnalyzer

        class TensorMode(nn.Module):

            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, inputs):
                return self.model(inputs, mode='tensor')

        self.model.eval()
        analyzer = FlopAnalyzer(TensorMode(self.model), (self.view, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return analyzer.total() / 1e9


def time_call(fn: Callable[[], object]) -> float:
    """Seconds taken by ``fn()`` (CPU work is synchronous)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_tensor_memory(fn: Callable[[], object]) -> int:
    """Peak bytes of tensor memory allocated by ``fn()`` above the start.

    Sums the CPU allocation (positive) and free (negative) events that
    PyTorch's allocator reports to :mod:`torch.profiler`
    (``profile_memory=True``), in time order, as the public Chrome-trace
    export writes them (``[memory]`` events with ``Bytes``), and returns
    the largest total reached while ``fn`` ran (0 if it allocated nothing).
    """
    import json
    import tempfile

    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        fn()
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'trace.json')
        p.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)['traceEvents']
    allocations = sorted(
        (e['ts'], e['args'].get('Ev Idx', 0), e['args']['Bytes'])
        for e in events if e.get('name') == '[memory]'
        and e.get('args', {}).get('Device Type', 0) == 0)
    current = peak = 0
    for _, _, size in allocations:
        current += size
        peak = max(peak, current)
    return peak


def run_benchmark(specs: Sequence[ModelSpec],
                  settings: BenchmarkSettings,
                  progress: Optional[Callable[[str], None]] = None
                  ) -> List[ModelResult]:
    """Measure ``specs`` and the two baselines in this process.

    Args:
        specs (Sequence[ModelSpec]): Our models (baselines are added).
        settings (BenchmarkSettings): What to measure.
        progress (callable, optional): Called with a short description
            after every unit of work (for a progress bar); see
            :func:`count_work`.

    Returns:
        list[ModelResult]: Baselines first, then ``specs`` in order.
    """
    progress = progress or (lambda _: None)
    set_threads(settings.threads)
    all_specs = baseline_specs() + list(specs)
    runners = []
    for spec in all_specs:
        runners.append(ModelRunner(spec, settings))
        progress(f'built {spec.name}')
    static = {}
    for runner in runners:
        static[runner.spec.name] = (runner.params_m(), runner.gflops())
        progress(f'FLOPs {runner.name}')
    if settings.compile:
        for spec in all_specs:
            runners.append(ModelRunner(spec, settings, compiled=True))
            progress(f'built {spec.name}{COMPILED}')

    compiled_bytes = {}
    for runner in runners:  # warm-up: compilation, oneDNN, allocations
        if settings.bytes and runner.compiled:
            # Inductor counts while it compiles: the first call.
            compiled_bytes[runner.name] = bytes_moved.inductor_bytes(
                runner.infer)
        for _ in range(settings.warmup):
            runner.infer()
            if runner.trains:
                runner.train_step()
        progress(f'warm-up {runner.name}')

    infer_times = defaultdict(list)
    train_times = defaultdict(list)
    for _ in range(settings.repeats):
        for runner in runners:
            infer_times[runner.name].append(time_call(runner.infer))
            if runner.trains:
                train_times[runner.name].append(
                    time_call(runner.train_step))
            progress(f'timing {runner.name}')

    results = []
    for runner in runners:
        params, gflops = static[runner.spec.name]
        infer_peak = peak_tensor_memory(runner.infer)
        train_peak = (peak_tensor_memory(runner.train_step)
                      if runner.trains else None)
        progress(f'memory {runner.name}')
        nbytes = by_module = None
        if settings.bytes and runner.compiled:
            nbytes = compiled_bytes[runner.name]
        elif settings.bytes:
            report = bytes_moved.eager_bytes(runner.infer, runner.model)
            nbytes, by_module = report.total, report.by_module
        results.append(
            ModelResult(
                name=runner.name,
                backbone=type(runner.model.backbone).__name__,
                frames_per_view=runner.view.shape[1],
                params_m=params,
                gflops=gflops,
                inference=TimeStats.from_seconds(infer_times[runner.name]),
                train_step=(TimeStats.from_seconds(train_times[runner.name])
                            if runner.trains else None),
                inference_peak_mib=infer_peak / 2**20,
                train_peak_mib=(train_peak / 2**20
                                if train_peak is not None else None),
                compiled=runner.compiled,
                inference_bytes=nbytes,
                bytes_by_module=by_module))
    return results


def count_work(num_specs: int, settings: BenchmarkSettings) -> int:
    """Number of ``progress`` calls :func:`run_benchmark` makes."""
    models = num_specs + len(BASELINE_NAMES)
    per_model = 4 + settings.repeats
    if settings.compile:
        return models * (2 * per_model - 1)  # FLOPs counted once
    return models * per_model


# --------------------------------------------------------------------------
# Ratios, table, JSON

METRICS = (
    ('gflops', 'GFLOPs', lambda r: r.gflops),
    ('inference_ms', 'inference ms', lambda r: r.inference.median),
    ('train_step_ms', 'train step ms',
     lambda r: r.train_step.median if r.train_step else None),
    ('train_peak_mib', 'train peak MiB', lambda r: r.train_peak_mib),
    ('inference_peak_mib', 'infer peak MiB',
     lambda r: r.inference_peak_mib),
    ('gflops_per_s', 'GFLOP/s', lambda r: r.gflops_per_s),
    ('inference_bytes', 'infer bytes', lambda r: r.inference_bytes),
)


def ratios(results: Sequence[ModelResult]) -> Dict[str, Dict]:
    """Every metric of every model over TSN-R50's and TSM-R50's (the
    compiled baselines for a compiled model)."""
    by_name = {r.name: r for r in results}
    table = {}
    for result in results:
        suffix = COMPILED if result.compiled else ''
        table[result.name] = {}
        for base in BASELINE_NAMES:
            reference = by_name[base + suffix]
            table[result.name][f'vs_{base}'] = {
                key: value(result) / value(reference)
                for key, _, value in METRICS
                if value(reference) and value(result) is not None
            }
    return table


def _time_cell(stats: Optional[TimeStats]) -> str:
    if stats is None:
        return '-'
    return f'{stats.median:.1f} ±{100 * stats.relative_spread:.0f}%'


def _ratio_cell(ratios_of: Dict, key: str) -> str:
    return f'{ratios_of[key]:.2f}' if key in ratios_of else '-'


def format_table(results: Sequence[ModelResult]) -> str:
    """A Markdown table of the results with ratios to the baselines
    (compiled rows: to the compiled baselines)."""
    rel = ratios(results)
    header = ('| model | backbone | frames | params M | GFLOPs | '
              'inference ms | ×TSN | ×TSM | train step ms | ×TSN | ×TSM | '
              'train peak MiB | ×TSN | infer peak MiB | GFLOP/s |')
    lines = [header, '|' + '---|' * (header.count('|') - 1)]
    for r in results:
        tsn, tsm = rel[r.name]['vs_tsn_r50'], rel[r.name]['vs_tsm_r50']
        train_peak = ('-' if r.train_peak_mib is None else
                      f'{r.train_peak_mib:.0f}')
        lines.append(
            f'| {r.name} | {r.backbone} | {r.frames_per_view} | '
            f'{r.params_m:.1f} | {r.gflops:.1f} | {_time_cell(r.inference)}'
            f' | {_ratio_cell(tsn, "inference_ms")} | '
            f'{_ratio_cell(tsm, "inference_ms")} | '
            f'{_time_cell(r.train_step)} | '
            f'{_ratio_cell(tsn, "train_step_ms")} | '
            f'{_ratio_cell(tsm, "train_step_ms")} | {train_peak} | '
            f'{_ratio_cell(tsn, "train_peak_mib")} | '
            f'{r.inference_peak_mib:.0f} | {r.gflops_per_s:.1f} |')
    return '\n'.join(lines)


def format_bytes(results: Sequence[ModelResult], top: int = 8) -> str:
    """Bytes moved per inference (``settings.bytes``): a table of every
    model, eager and compiled, with ratios to TSN, then the largest eager
    self bytes by module type of every model."""
    rows: Dict[str, Dict[str, Optional[int]]] = {}
    for r in results:
        name = r.name[:-len(COMPILED)] if r.compiled else r.name
        rows.setdefault(name, {})['compiled' if r.compiled else
                                  'eager'] = r.inference_bytes
    parts = ['bytes read + written per inference (eager: ATen ops; '
             'compiled: inductor\'s kernels)',
             bytes_moved.format_bytes_table(rows, baseline='tsn_r50')]
    for r in results:
        if r.bytes_by_module:
            report = bytes_moved.BytesReport(
                total=r.inference_bytes, by_module=r.bytes_by_module)
            parts.append(bytes_moved.format_module_bytes(r.name, report, top))
    return '\n\n'.join(parts)


def results_to_json(results: Sequence[ModelResult],
                    settings: BenchmarkSettings,
                    machine: Dict,
                    extra: Optional[Dict] = None) -> Dict:
    """A JSON-serialisable record of one run."""
    rel = ratios(results)
    models = []
    for r in results:
        record = asdict(r)
        record['gflops_per_s'] = r.gflops_per_s
        record['ratios'] = rel[r.name]
        models.append(record)
    record = dict(settings=asdict(settings), machine=machine,
                  models=models)
    record.update(extra or {})
    return record


# --------------------------------------------------------------------------
# Where the time goes


class ModuleTimer:
    """Wall time per module of forward passes, from forward hooks.

    For every module call the inclusive time (the call with its children)
    and the self time (inclusive minus the children's inclusive time) are
    added to the module's type. Self times therefore add up to the time
    of the outermost call, and a module that does elementwise work itself
    (e.g. reshapes and differences in ``LongTermTDM.forward``) shows it as
    self time.

    Args:
        model (nn.Module): The model to time; hooks are removed by
            :meth:`remove`.
    """

    def __init__(self, model: nn.Module) -> None:
        self.inclusive: Dict[str, float] = defaultdict(float)
        self.self_time: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)
        self._stack: List[List] = []
        self._handles = []
        for module in model.modules():
            self._handles.append(
                module.register_forward_pre_hook(self._pre))
            self._handles.append(module.register_forward_hook(self._post))

    def _pre(self, module, args) -> None:
        self._stack.append([time.perf_counter(), 0.0])

    def _post(self, module, args, output) -> None:
        start, children = self._stack.pop()
        elapsed = time.perf_counter() - start
        name = type(module).__name__
        self.inclusive[name] += elapsed
        self.self_time[name] += elapsed - children
        self.calls[name] += 1
        if self._stack:
            self._stack[-1][1] += elapsed

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def profile_modules(runner: ModelRunner, repeats: int = 3,
                    mode: str = 'inference') -> List[Dict]:
    """Time per module type of ``runner``'s inference or training step.

    Args:
        runner (ModelRunner): The model.
        repeats (int): Passes averaged (after one untimed pass).
        mode (str): ``'inference'`` or ``'train'`` (forward and backward;
            the hooks time the forward only, the remainder is reported as
            ``(backward + optimizer)``).

    Returns:
        list[dict]: Rows ``{module, calls, self_ms, inclusive_ms,
        share}`` sorted by self time, per pass; ``share`` is the self
        time's fraction of the pass.
    """
    step = runner.infer if mode == 'inference' else runner.train_step
    step()
    timer = ModuleTimer(runner.model)
    try:
        total = sum(time_call(step) for _ in range(repeats)) / repeats
    finally:
        timer.remove()
    rows = [
        dict(module=name,
             calls=timer.calls[name] // repeats,
             self_ms=1e3 * timer.self_time[name] / repeats,
             inclusive_ms=1e3 * timer.inclusive[name] / repeats)
        for name in timer.self_time
    ]
    outside = 1e3 * total - sum(row['self_ms'] for row in rows)
    rows.append(dict(module='(outside forward)' if mode == 'inference'
                     else '(backward + optimizer)',
                     calls=0, self_ms=outside, inclusive_ms=outside))
    for row in rows:
        row['share'] = row['self_ms'] / (1e3 * total) if total else 0.
    return sorted(rows, key=lambda row: -row['self_ms'])


def format_profile(name: str, rows: Sequence[Dict], top: int = 15) -> str:
    """A Markdown table of the ``top`` module types by self time."""
    total = sum(row['self_ms'] for row in rows)
    lines = [f'{name}: {total:.1f} ms per pass, by module type',
             '| module type | calls | self ms | share | incl. ms |',
             '|---|---|---|---|---|']
    for row in rows[:top]:
        lines.append(f"| {row['module']} | {row['calls']} | "
                     f"{row['self_ms']:.1f} | {100 * row['share']:.1f}% | "
                     f"{row['inclusive_ms']:.1f} |")
    return '\n'.join(lines)


# --------------------------------------------------------------------------
# Where the time of a compiled model goes

# One event of a compiled pass, as ``key_averages(group_by_input_shape=
# True)`` of :mod:`torch.profiler` gives it: (name, input shapes, self time
# in µs, calls).
ProfileEvent = Tuple[str, Sequence[Sequence[int]], float, int]

# The ATen ops of a convolution that inductor leaves to ATen ("extern"
# kernels). ``aten::convolution`` calls ``aten::_convolution``, which calls
# oneDNN (``aten::mkldnn_convolution``) or the native fallback
# (``aten::thnn_conv2d`` -> ``aten::_slow_conv2d_forward``); every level
# has the input and weight as its first two arguments, and the self times
# of the levels add up to the convolution's time. ``mkldnn::`` ops are the
# prepacked convolutions of inductor's ``freezing``.
CONV_OPS = ('aten::convolution', 'aten::_convolution', 'aten::conv2d',
            'aten::mkldnn_convolution', 'aten::thnn_conv2d',
            'aten::_slow_conv2d_forward', 'aten::slow_conv_dilated2d',
            'aten::_nnpack_spatial_convolution',
            'mkldnn::_convolution_pointwise',
            'mkldnn::_convolution_pointwise_')
# ``graph_<N>_cpp_fused_<aten ops>_<n>``: a C++ kernel of inductor's
# graph ``N`` (``cpp.enable_kernel_profile``), named after the ATen ops
# fused into it and numbered. Templates and other generated kernels carry
# the ``graph_<N>_`` prefix without ``cpp_fused_``.
_FUSED_NAME = re.compile(r'^(?:graph_\d+_)?cpp_fused_(?P<ops>.+?)(?:_\d+)?$')
_INDUCTOR_NAME = re.compile(r'^graph_\d+_(?P<ops>.+?)(?:_\d+)?$')
SMALL_CHANNELS = 32


def conv_class(input_shapes: Sequence[Sequence[int]]) -> str:
    """The kind of a convolution, from its input and weight shapes.

    With input ``(N, C_in, *spatial)`` and weight ``(C_out, C_in / g, *k)``
    the groups are ``g = C_in / weight[1]``. Classes, first match wins:
    ``depthwise`` (``weight[1] == 1``, ``g = C_in > 1``), ``grouped``
    (``1 < g < C_in``), ``conv 7x7 stem`` (a 7x7 kernel: ResNet's stem and
    TDN's short-term stem), ``conv, in or out channels <= 32`` (too few
    channels to fill the vector units), ``conv 1x1``, ``conv 3x3`` and
    ``conv KxK`` for other kernels.

    Args:
        input_shapes (Sequence[Sequence[int]]): The op's recorded input
            shapes (``record_shapes=True``): input, weight, then scalars.

    Returns:
        str: The class; ``conv (no shapes)`` if the shapes are missing.
    """
    if (len(input_shapes) < 2 or len(input_shapes[0]) < 3
            or len(input_shapes[1]) != len(input_shapes[0])):
        return 'conv (no shapes)'
    x, weight = input_shapes[0], input_shapes[1]
    c_in, c_out, per_group, kernel = x[1], weight[0], weight[1], weight[2:]
    groups = c_in // per_group if per_group else 1
    if per_group == 1 and c_in > 1:
        return 'depthwise'
    if groups > 1:
        return 'grouped'
    if all(k == 7 for k in kernel):
        return 'conv 7x7 stem'
    if min(c_in, c_out) <= SMALL_CHANNELS:
        return f'conv, in or out channels <= {SMALL_CHANNELS}'
    return 'conv ' + 'x'.join(str(k) for k in kernel)


def fused_family(name: str) -> Optional[str]:
    """The op family of an inductor kernel event, ``None`` for others.

    ``graph_0_cpp_fused__native_batch_norm_legit_no_training_relu_6`` ->
    ``_native_batch_norm_legit_no_training_relu`` (graph prefix,
    ``cpp_fused_`` and the kernel's number stripped), so that the kernels
    doing the same work at different layers add up.
    """
    match = _FUSED_NAME.match(name) or _INDUCTOR_NAME.match(name)
    return match.group('ops') if match else None


def profile_events(prof) -> List[ProfileEvent]:
    """The events of a :mod:`torch.profiler` result, averaged per name and
    input shapes (the profile must record shapes for :func:`conv_class`).
    """
    return [(e.key, [list(s) for s in (e.input_shapes or [])],
             e.self_cpu_time_total, e.count)
            for e in prof.key_averages(group_by_input_shape=True)]


def _shape_text(shapes: Sequence[Sequence[int]]) -> str:
    return ' x '.join('[' + ','.join(map(str, s)) + ']' for s in shapes)


def group_compiled_profile(events: Sequence[ProfileEvent],
                           passes: int = 1) -> Dict:
    """Where the time of compiled passes goes: extern convolutions by
    :func:`conv_class`, inductor's fused kernels by :func:`fused_family`,
    and the rest.

    Times are self times (an event's time less its children's), so that
    nothing counts twice and the parts add up to the total: the profiled
    threads' CPU time, i.e. the pass's wall time for single-threaded
    callers (OpenMP work inside a kernel counts once, as the caller's).
    A convolution's levels (``aten::convolution`` down to oneDNN) are one
    call and their self times one convolution.

    Args:
        events (Sequence[ProfileEvent]): ``(name, input_shapes,
            self_time_us, count)`` per name and shapes, e.g. from
            :func:`profile_events`.
        passes (int): Passes profiled; every figure is per pass.

    Returns:
        dict: ``passes``, ``total_ms``; ``convolutions`` and ``fused``:
        rows ``{class|family, calls, ms, share}`` by time (``fused`` rows
        also count ``kernels``, the distinct kernels); ``other``: ``{calls,
        ms, share, top}`` (``top``: its largest ``[name, ms]``);
        ``kernels``: every single kernel, ``{name, kind, calls, ms,
        share}`` by time (a convolution named by its innermost op and
        input x weight shapes, ``kind`` its class; a fused kernel by name,
        ``kind`` ``'fused'``).
    """
    if passes < 1:
        raise ValueError(f'passes must be >= 1, got {passes}.')
    total = sum(event[2] for event in events)
    # (input, weight) shapes -> per op: [self µs, count]
    convs: Dict[Tuple, Dict[str, List[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0., 0]))
    fused: Dict[str, List] = defaultdict(lambda: [0., 0, 0])
    kernels = []
    other: Dict[str, List[float]] = defaultdict(lambda: [0., 0])
    for name, shapes, self_us, count in events:
        family = fused_family(name)
        if name in CONV_OPS:
            key = tuple(tuple(s) for s in shapes[:2])
            convs[key][name][0] += self_us
            convs[key][name][1] += count
        elif family is not None:
            fused[family][0] += self_us
            fused[family][1] += count
            fused[family][2] += 1
            kernels.append(dict(name=name, kind='fused', us=self_us,
                                count=count))
        else:
            other[name][0] += self_us
            other[name][1] += count
    by_class: Dict[str, List[float]] = defaultdict(lambda: [0., 0])
    for key, ops in convs.items():
        kind = conv_class(key)
        us = sum(t for t, _ in ops.values())
        # Every level is called once per convolution.
        count = max(c for _, c in ops.values())
        inner = max(ops, key=lambda op: ops[op][0])
        by_class[kind][0] += us
        by_class[kind][1] += count
        kernels.append(dict(name=f'{inner} {_shape_text(key)}', kind=kind,
                            us=us, count=count))

    def ms(us: float) -> float:
        return us / 1e3 / passes

    def share(us: float) -> float:
        return us / total if total else 0.

    convolutions = sorted(
        (dict(**{'class': kind}, calls=count / passes, ms=ms(us),
              share=share(us)) for kind, (us, count) in by_class.items()),
        key=lambda row: -row['ms'])
    families = sorted(
        (dict(family=family, calls=count / passes, kernels=n, ms=ms(us),
              share=share(us))
         for family, (us, count, n) in fused.items()),
        key=lambda row: -row['ms'])
    other_us = sum(us for us, _ in other.values())
    top_other = sorted(other.items(), key=lambda item: -item[1][0])
    return dict(
        passes=passes,
        total_ms=ms(total),
        convolutions=convolutions,
        fused=families,
        other=dict(
            calls=sum(c for _, c in other.values()) / passes,
            ms=ms(other_us),
            share=share(other_us),
            top=[[name, ms(us)] for name, (us, _) in top_other[:10]]),
        kernels=sorted(
            (dict(name=k['name'], kind=k['kind'],
                  calls=k['count'] / passes, ms=ms(k['us']),
                  share=share(k['us'])) for k in kernels),
            key=lambda row: -row['ms']))


def profile_compiled(runner: ModelRunner, repeats: int = 3) -> Dict:
    """Where the time of ``runner``'s compiled inference goes.

    Runs one untimed inference (which compiles, if not done yet), then
    ``repeats`` under :mod:`torch.profiler` (CPU, ``record_shapes``), and
    groups them with :func:`group_compiled_profile`.

    Args:
        runner (ModelRunner): A compiled runner whose settings have
            ``kernel_profile`` (else inductor's kernels record no events
            and their time would pass for framework overhead).
        repeats (int): Passes profiled.

    Returns:
        dict: See :func:`group_compiled_profile`.
    """
    from torch.profiler import ProfilerActivity, profile
    if not (runner.compiled and runner.settings.kernel_profile):
        raise ValueError(
            f'profile_compiled({runner.name!r}) needs a compiled runner '
            'built with BenchmarkSettings(compile=True, '
            'kernel_profile=True), so that inductor\'s kernels record '
            'profiler events.')
    runner.infer()
    with profile(activities=[ProfilerActivity.CPU],
                 record_shapes=True) as prof:
        for _ in range(repeats):
            runner.infer()
    return group_compiled_profile(profile_events(prof), passes=repeats)


def format_compiled_profile(name: str, profile: Dict, top: int = 12) -> str:
    """Markdown tables of :func:`group_compiled_profile`'s result: the
    parts of a pass (convolution classes, the ``top`` fused families, the
    other fused families as one row, everything else, the total; the rows
    add up to the total), then the ``top`` single kernels."""
    total = profile['total_ms']
    lines = [
        f'{name}: {total:.1f} ms per pass (profiler self time, '
        f"{profile['passes']} passes), by extern convolution class and "
        'fused kernel family',
        '| part | calls | ms | share |', '|---|---|---|---|'
    ]

    def row(label, calls, ms, share):
        lines.append(f'| {label} | {calls:g} | {ms:.2f} | '
                     f'{100 * share:.1f}% |')

    for conv in profile['convolutions']:
        row(f"extern {conv['class']}", conv['calls'], conv['ms'],
            conv['share'])
    families = profile['fused']
    for fam in families[:top]:
        plural = 's' if fam['kernels'] > 1 else ''
        row(f"fused {fam['family']} ({fam['kernels']} kernel{plural})",
            fam['calls'], fam['ms'], fam['share'])
    rest = families[top:]
    if rest:
        row(f'fused, {len(rest)} other families',
            sum(f['calls'] for f in rest), sum(f['ms'] for f in rest),
            sum(f['share'] for f in rest))
    other = profile['other']
    row('other (ATen ops, framework)', other['calls'], other['ms'],
        other['share'])
    lines.append(f'| total | | {total:.2f} | 100.0% |')
    if other['top']:
        lines.append('other, largest: ' + ', '.join(
            f'{op} {ms:.2f} ms' for op, ms in other['top'][:3]))
    lines += ['', f'{name}: top {top} kernels',
              '| kernel | kind | calls | ms per pass | share |',
              '|---|---|---|---|---|']
    for kernel in profile['kernels'][:top]:
        lines.append(f"| {kernel['name']} | {kernel['kind']} | "
                     f"{kernel['calls']:g} | {kernel['ms']:.2f} | "
                     f"{100 * kernel['share']:.1f}% |")
    return '\n'.join(lines)


def summary_line(results: Sequence[ModelResult]) -> str:
    """One line: every model's inference and training ratio to TSN."""
    rel = ratios(results)
    parts = []
    for r in results:
        if r.name in BASELINE_NAMES or \
                r.name in (b + COMPILED for b in BASELINE_NAMES):
            continue
        tsn = rel[r.name]['vs_tsn_r50']
        tsm = rel[r.name]['vs_tsm_r50']
        part = (f"{r.name}: infer {tsn['inference_ms']:.2f}x TSN / "
                f"{tsm['inference_ms']:.2f}x TSM")
        if 'train_step_ms' in tsn:
            part += (f", train {tsn['train_step_ms']:.2f}x TSN, mem "
                     f"{tsn['train_peak_mib']:.2f}x TSN")
        if 'inference_bytes' in tsn:
            part += f", bytes {tsn['inference_bytes']:.2f}x TSN"
        parts.append(part)
    return '; '.join(parts)
