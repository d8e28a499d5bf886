# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""FLOPs of a recognizer's test view with MMEngine's ``FlopAnalyzer``.

``FlopAnalyzer`` traces the model with ``torch.jit`` and counts every
traced operator from the shapes of its inputs and outputs. Tracing runs the
model, and at the papers' resolution (224x224, up to 40 frames per view)
the arithmetic costs seconds per model, while the count needs only the
shapes. :func:`shape_only_layers` therefore routes 2D convolutions and
batch norms through stand-in operators that return an uninitialised tensor
of the right shape, and in-place ReLUs through nothing. The stand-ins take
the same arguments in the same order as ``aten::_convolution`` and
``aten::batch_norm`` and are counted by MMEngine's own handles for those
operators (:func:`count_flops` registers them), so the counts are those of
a full trace; ``tests/test_tools/test_flops.py`` checks this at 224x224.
The values computed under the stand-ins are meaningless: use them for
counting only.

A developer tool beside ``paper_table.py`` (its only user), not part of the
installed library: it registers custom ``torch.library`` operators, which a
library import should not do.
"""
import contextlib
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import batchnorm_flop_jit, conv_flop_jit

SHAPE_ONLY_NAMESPACE = 'mmaction_tdx_shape_only'
_CONV_SCHEMA = ('convolution(Tensor input, Tensor weight, Tensor? bias, '
                'int[] stride, int[] padding, int[] dilation, '
                'bool transposed, '
                'int[] output_padding, int groups, bool benchmark, '
                'bool deterministic, bool cudnn_enabled, bool allow_tf32) '
                '-> Tensor')
_BN_SCHEMA = ('batch_norm(Tensor input, Tensor? weight, Tensor? bias, '
              'Tensor? running_mean, Tensor? running_var, bool training, '
              'float momentum, float eps, bool cudnn_enabled) -> Tensor')
_library: Optional[torch.library.Library] = None


def _conv_output_shape(x: torch.Tensor, weight: torch.Tensor,
                       stride: Sequence[int], padding: Sequence[int],
                       dilation: Sequence[int]) -> Tuple[int, ...]:
    """Output shape of a non-transposed convolution."""
    spatial = [(x.shape[2 + i] + 2 * padding[i] - dilation[i] *
                (weight.shape[2 + i] - 1) - 1) // stride[i] + 1
               for i in range(x.dim() - 2)]
    return (x.shape[0], weight.shape[0], *spatial)


def _shape_only_convolution(x, weight, bias, stride, padding, dilation,
                            transposed, output_padding, groups, *flags):
    return x.new_empty(
        _conv_output_shape(x, weight, stride, padding, dilation))


def _shape_only_batch_norm(x, *args):
    return torch.empty_like(x)


def _register_stand_ins() -> None:
    """Define the stand-in operators once per process."""
    global _library
    if _library is not None:
        return
    if hasattr(getattr(torch.ops, SHAPE_ONLY_NAMESPACE), 'convolution'):
        return  # defined by this file imported under another module name
    library = torch.library.Library(SHAPE_ONLY_NAMESPACE, 'DEF')
    library.define(_CONV_SCHEMA)
    library.define(_BN_SCHEMA)
    library.impl('convolution', _shape_only_convolution, 'CPU')
    library.impl('batch_norm', _shape_only_batch_norm, 'CPU')
    _library = library


def _as_list(value, n: int = 2) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


@contextlib.contextmanager
def shape_only_layers() -> Iterator[None]:
    """Within the block, conv2d/batch_norm/in-place ReLU skip arithmetic.

    ``F.conv2d`` (except ``padding='same'``-style strings) and
    ``F.batch_norm`` call the stand-in operators; ``F.relu(x,
    inplace=True)`` returns ``x``. Everything else runs as usual.
    """
    _register_stand_ins()
    ops = getattr(torch.ops, SHAPE_ONLY_NAMESPACE)
    conv2d, batch_norm, relu = F.conv2d, F.batch_norm, F.relu

    def shape_only_conv2d(input, weight, bias=None, stride=1, padding=0,
                          dilation=1, groups=1):
        if isinstance(padding, str):
            return conv2d(input, weight, bias, stride, padding, dilation,
                          groups)
        return ops.convolution(input, weight, bias, _as_list(stride),
                               _as_list(padding), _as_list(dilation), False,
                               [0, 0], groups, False, False, True, True)

    def shape_only_batch_norm(input, running_mean, running_var, weight=None,
                              bias=None, training=False, momentum=0.1,
                              eps=1e-5):
        return ops.batch_norm(input, weight, bias, running_mean, running_var,
                              training, momentum, eps, True)

    def shape_only_relu(input, inplace=False):
        # ReLU costs no FLOPs; in place its output is its input.
        return input if inplace else relu(input)

    F.conv2d, F.batch_norm, F.relu = (shape_only_conv2d,
                                      shape_only_batch_norm, shape_only_relu)
    try:
        yield
    finally:
        F.conv2d, F.batch_norm, F.relu = conv2d, batch_norm, relu


class _HeadStage(nn.Module):
    """Calls a recognizer up to the classification scores of one input."""

    def __init__(self, recognizer: nn.Module) -> None:
        super().__init__()
        self.recognizer = recognizer
        self.feature_shape: Optional[Tuple[int, ...]] = None
        self.num_segs: Optional[int] = None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        feats, kwargs = self.recognizer.extract_feat(
            inputs, stage='neck', test_mode=True)
        # Under tracing, sizes are tensors.
        self.feature_shape = tuple(int(size) for size in feats.shape)
        self.num_segs = int(kwargs['num_segs'])
        return self.recognizer.cls_head(feats, num_segs=self.num_segs)


class _Head(nn.Module):
    """A classification head on features of a fixed segment count."""

    def __init__(self, head: nn.Module, num_segs: int) -> None:
        super().__init__()
        self.head = head
        self.num_segs = num_segs

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats, num_segs=self.num_segs)


def _analyse(module: nn.Module, inputs: torch.Tensor,
             shape_only: bool) -> FlopAnalyzer:
    analyzer = FlopAnalyzer(module, (inputs, ))
    _register_stand_ins()
    analyzer.set_op_handle(f'{SHAPE_ONLY_NAMESPACE}::convolution',
                           conv_flop_jit,
                           f'{SHAPE_ONLY_NAMESPACE}::batch_norm',
                           batchnorm_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    context = shape_only_layers() if shape_only else contextlib.nullcontext()
    with torch.no_grad(), context:
        analyzer.total()  # traces once; the counts are cached
    return analyzer


class RecognizerFlops:
    """FLOPs of one test view of a recognizer, split into backbone and head.

    Args:
        recognizer (nn.Module): An MMAction2 2D recognizer (``eval`` is set
            here) without neck.
        frames (int): Frames of one view (segments x frames per segment).
        resolution (int): Square input size. Defaults to 224.
        shape_only (bool): Use :func:`shape_only_layers`. Defaults to True.

    Attributes:
        total (int): FLOPs (multiply-adds) of the view.
        backbone (int): Of which in the backbone (everything before the
            head).
        head (int): Of which in the classification head.
        by_operator (dict): FLOPs per operator type.
        feature_shape (tuple): Shape of the head's input.
        num_segs (int): Segments the head averages.
    """

    def __init__(self,
                 recognizer: nn.Module,
                 frames: int,
                 resolution: int = 224,
                 shape_only: bool = True) -> None:
        if getattr(recognizer, 'with_neck', False):
            raise ValueError('RecognizerFlops counts recognizers without a '
                             'neck.')
        recognizer.eval()
        stage = _HeadStage(recognizer)
        inputs = torch.zeros(1, frames, 3, resolution, resolution)
        analyzer = _analyse(stage, inputs, shape_only)
        by_module = analyzer.by_module()
        self.total = int(analyzer.total())
        self.head = int(by_module.get('recognizer.cls_head', 0))
        self.backbone = self.total - self.head
        self.by_operator: Dict[str, int] = dict(analyzer.by_operator())
        self.feature_shape = stage.feature_shape
        self.num_segs = stage.num_segs


def head_flops(head: nn.Module, feature_shape: Sequence[int],
               num_segs: int) -> int:
    """FLOPs of a classification head on features of ``feature_shape``."""
    head.eval()
    analyzer = _analyse(
        _Head(head, num_segs), torch.zeros(*feature_shape), shape_only=False)
    return int(analyzer.total())
