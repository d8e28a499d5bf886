# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Bytes read plus written by one pass of a model: a memory-traffic figure
that does not move with the machine's load.

* **Eager** (:func:`eager_bytes`): every ATen operator that runs is seen
  by a :class:`~torch.utils._python_dispatch.TorchDispatchMode`
  (:class:`BytesCounter`) and charged the bytes of its tensor inputs
  (read) plus its tensor outputs (written)::

      bytes(op) = sum_in min(numel * itemsize, storage bytes)
                + sum_out numel * itemsize

  An input is counted once even if passed twice (``x * x``); a
  broadcast (expanded) input at most its storage's size. Operators that
  only make a view (``view``, ``permute``, slicing, ``expand``, ...: every
  output aliases an input and nothing is written) move nothing. An
  in-place operator reads its ``self`` and writes it again. Composite
  operators are seen as the calls they make, so ``F.linear`` is an
  ``addmm``. This is the traffic of eager PyTorch, one full pass per
  operator, not of the hardware (caches are ignored): on a GPU, where
  memory-bound elementwise work costs what it reads and writes, it is a
  proxy of that cost independent of the host.
  Bytes are also attributed to the innermost module running (forward
  hooks), by module type: a module's *self* bytes, which add up to the
  total.
* **Compiled** (:func:`inductor_bytes`): inductor's own estimate for its
  generated and extern kernels, ``torch._inductor.metrics
  .num_bytes_accessed`` (``Scheduler`` nodes'
  ``get_read_write_buffers_sizes()``: each buffer a kernel reads or writes,
  once, at most its size; buffers that fusion keeps in registers are not
  counted). Inductor computes it while generating code, only when its
  ``inductor_metrics`` log artifact is enabled and not on a cache hit, so
  the count compiles the model afresh with the FX-graph and AOT-autograd
  caches off, and enables the artifact on a logger of its own that prints
  nothing. It is a per-graph figure: the total of all graphs compiled
  during the call, i.e. the bytes of one pass when every graph runs once
  per pass (as for the recognizers here: no graph breaks inside the
  model).

Developer tooling: imported by ``benchmark_lib.py`` (``--bytes``).
"""
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def tensor_bytes(tensor: torch.Tensor, read: bool) -> int:
    """Bytes of ``tensor``; a read is at most its storage's size (an
    expanded, broadcast tensor reads each stored element once)."""
    nbytes = tensor.numel() * tensor.element_size()
    if read:
        try:
            nbytes = min(nbytes, tensor.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):  # no storage (meta)
            pass
    return nbytes


def _tensors(tree) -> List[torch.Tensor]:
    leaves, _ = tree_flatten(tree)
    return [x for x in leaves if isinstance(x, torch.Tensor)]


def _unique(tensors: List[torch.Tensor]) -> List[torch.Tensor]:
    seen, out = set(), []
    for t in tensors:
        key = (t.data_ptr(), tuple(t.shape), t.stride(), t.dtype)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def _storage_ptr(tensor: torch.Tensor) -> Optional[int]:
    try:
        return tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return None


@dataclass
class BytesReport:
    """Bytes moved by one pass.

    Args:
        total (int): Bytes read plus written.
        read (int): Bytes read.
        written (int): Bytes written.
        by_op (dict): ``{aten op: bytes}``.
        by_module (dict): ``{module type: self bytes}`` (the innermost
            module running; ``'(outside)'`` for ops outside any module).
        calls (int): Operators counted (views excluded).
        weights (int): Of ``read``, the bytes read from the model's
            parameters and buffers (with ``model``): at tiny resolutions
            they dominate, so :attr:`activations` is what compares
            architectures there.
    """
    total: int = 0
    read: int = 0
    written: int = 0
    by_op: Dict[str, int] = field(default_factory=dict)
    by_module: Dict[str, int] = field(default_factory=dict)
    calls: int = 0
    weights: int = 0

    @property
    def activations(self) -> int:
        """Bytes moved other than reading weights."""
        return self.total - self.weights

    def top(self, table: str = 'by_module', n: int = 10) -> List[tuple]:
        """The ``n`` largest entries of ``by_op`` or ``by_module``."""
        items = getattr(self, table).items()
        return sorted(items, key=lambda kv: -kv[1])[:n]


class BytesCounter(TorchDispatchMode):
    """Counts the bytes every ATen operator reads and writes (see the
    module docstring for the rule).

    Use as a context manager around the pass; :attr:`report` holds the
    counts. ``module_stack`` is a list of module type names kept up to
    date by :func:`module_hooks` (the innermost module last);
    ``weight_ptrs`` the data pointers of the model's parameters and
    buffers, whose reads are also counted as :attr:`BytesReport.weights`.
    """

    def __init__(self,
                 module_stack: Optional[List[str]] = None,
                 weight_ptrs: Optional[set] = None) -> None:
        super().__init__()
        self.module_stack = module_stack if module_stack is not None \
            else []
        self.weight_ptrs = weight_ptrs or set()
        self._by_op: Dict[str, int] = defaultdict(int)
        self._by_module: Dict[str, int] = defaultdict(int)
        self.read = self.written = self.calls = self.weights = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = _unique(_tensors((args, kwargs)))
        outputs = _unique(_tensors(out))
        schema = func._schema
        if not schema.is_mutable and outputs:
            # A view (or alias) op: every output shares an input's storage
            # and nothing was written.
            input_storages = {_storage_ptr(t) for t in inputs}
            if all(_storage_ptr(t) in input_storages
                   and _storage_ptr(t) is not None for t in outputs):
                return out
        read = sum(tensor_bytes(t, read=True) for t in inputs)
        self.weights += sum(
            tensor_bytes(t, read=True) for t in inputs
            if _storage_ptr(t) in self.weight_ptrs)
        written = sum(tensor_bytes(t, read=False) for t in outputs)
        name = str(func.overloadpacket.__name__)
        owner = self.module_stack[-1] if self.module_stack else '(outside)'
        self._by_op[name] += read + written
        self._by_module[owner] += read + written
        self.read += read
        self.written += written
        self.calls += 1
        return out

    @property
    def report(self) -> BytesReport:
        return BytesReport(
            total=self.read + self.written,
            read=self.read,
            written=self.written,
            by_op=dict(self._by_op),
            by_module=dict(self._by_module),
            calls=self.calls,
            weights=self.weights)


@contextlib.contextmanager
def module_hooks(model: nn.Module,
                 stack: List[str]) -> Iterator[None]:
    """Keep ``stack`` equal to the types of the modules of ``model``
    running now (outermost first) with forward pre- and post-hooks."""

    def push(module, args):
        stack.append(type(module).__name__)

    def pop(module, args, output):
        stack.pop()

    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(push))
        handles.append(module.register_forward_hook(pop))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        stack.clear()


def eager_bytes(fn: Callable[[], object],
                model: Optional[nn.Module] = None) -> BytesReport:
    """Bytes moved by ``fn()`` run eagerly; with ``model``, attributed to
    its module types too."""
    stack: List[str] = []
    hooks = module_hooks(model, stack) if model is not None \
        else contextlib.nullcontext()
    weight_ptrs = set()
    if model is not None:
        weight_ptrs = {
            _storage_ptr(t)
            for t in list(model.parameters()) + list(model.buffers())
        }
    with hooks, BytesCounter(stack, weight_ptrs) as counter:
        fn()
    return counter.report


@contextlib.contextmanager
def _inductor_metrics_enabled() -> Iterator[None]:
    """Make inductor compute its byte counts (it does so only while its
    ``inductor_metrics`` artifact logger is enabled for INFO) without
    printing them, and compile afresh (no cache hits)."""
    import torch._functorch.config as functorch_config
    import torch._inductor.compile_fx as compile_fx
    import torch._inductor.config as inductor_config

    log = compile_fx.inductor_metrics_log
    saved = (log.level, log.propagate, list(log.handlers), log.disabled)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers = [logging.NullHandler()]
    log.disabled = False
    try:
        with inductor_config.patch(fx_graph_cache=False,
                                   fx_graph_remote_cache=False), \
                functorch_config.patch(enable_autograd_cache=False):
            yield
    finally:
        log.setLevel(saved[0])
        log.propagate = saved[1]
        log.handlers = saved[2]
        log.disabled = saved[3]


def inductor_bytes(first_call: Callable[[], object]) -> int:
    """Inductor's bytes accessed by the kernels of the graphs compiled
    during ``first_call()`` (which must trigger the compilation, e.g. the
    first call of a fresh ``torch.compile`` wrapper)."""
    from torch._inductor import metrics
    with _inductor_metrics_enabled():
        metrics.reset()
        first_call()
        total = int(metrics.num_bytes_accessed)
        metrics.reset()
    return total


def format_bytes_table(rows: Dict[str, Dict[str, Optional[float]]],
                       baseline: str = 'tsn_r50') -> str:
    """A Markdown table of ``{model: {'eager': bytes, 'compiled':
    bytes}}`` in MB (10^6 bytes), with ratios to ``baseline``."""
    lines = ['| model | eager MB | xTSN | compiled MB | xTSN (compiled) |',
             '|---|---|---|---|---|']
    base = rows.get(baseline, {})

    def cell(value):
        return '-' if value is None else f'{value / 1e6:.1f}'

    def ratio(value, key):
        ref = base.get(key)
        return '-' if value is None or not ref else f'{value / ref:.2f}'

    for name, row in rows.items():
        eager, compiled = row.get('eager'), row.get('compiled')
        lines.append(f'| {name} | {cell(eager)} | {ratio(eager, "eager")} '
                     f'| {cell(compiled)} | {ratio(compiled, "compiled")} |')
    return '\n'.join(lines)


def format_module_bytes(name: str, report: BytesReport,
                        top: int = 12) -> str:
    """Eager self bytes by module type, the largest ``top``."""
    lines = [f'{name}: eager bytes by module type (self), MB '
             f'(total {report.total / 1e6:.1f})']
    for module, nbytes in report.top('by_module', top):
        lines.append(f'  {module:<34} {nbytes / 1e6:10.1f} '
                     f'{100 * nbytes / max(report.total, 1):5.1f} %')
    return '\n'.join(lines)
