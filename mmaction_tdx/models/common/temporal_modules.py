# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Temporal modules shared by TDN and TDRL.

Every module here is registered in MMAction2's ``MODELS`` registry, takes
``(in_channels, num_segments, **options)`` and maps a batch of segment
features ``(N*T, C, H, W) -> (N*T, C, H, W)``, where the ``T`` segments of
each of the ``N`` videos are consecutive along the first axis (the layout
of MMAction2's 2D recognizers). Backbones build them from a config such as
``dict(type='ChannelwiseTemporalConv')`` and fill in ``in_channels`` and
``num_segments`` themselves.

* :class:`TemporalShift`: TSM's parameter-free shift (Lin et al., ICCV 2019).
* :class:`ChannelwiseTemporalConv`: a depth-wise temporal convolution; this
  is TEINet's Temporal Interaction Module (TIM, Liu et al., AAAI 2020), the
  temporal module of TDRL (ECCV 2020, Sec. 4.2) and TDN's temporal conv.
  With ``init='shift'`` it starts out as exactly :class:`TemporalShift`.
* :class:`MotionEnhancementModule`: TEINet's Motion Enhanced Module (MEM),
  the "+MEM" row of TDRL's Table 4.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.registry import MODELS


def check_positive_int(value, name: str, module_name: str,
                        minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) \
            or value < minimum:
        raise ValueError(
            f'{module_name}: `{name}` must be an integer >= {minimum}, '
            f'got {value!r}.')


@MODELS.register_module()
class TemporalShift(nn.Module):
    """TSM's temporal shift, without parameters.

    With ``fold = C // shift_div``, the output of segment ``t`` takes
    channels ``[0, fold)`` from segment ``t + 1``, channels
    ``[fold, 2 * fold)`` from segment ``t - 1`` and keeps the other channels;
    shifted-in positions at the ends of each video are zero. This is the
    convention of MMAction2's ``TemporalShift.shift``
    (``mmaction/models/backbones/resnet_tsm.py``).

    Args:
        in_channels (int): ``C``; only validated (the shift has no weights).
        num_segments (int): ``T``, segments per video.
        shift_div (int): A ``1 / shift_div`` of the channels is shifted each
            way. Defaults to 8.

    Shape:
        ``(N*T, C, H, W) -> (N*T, C, H, W)``.
    """

    def __init__(self,
                 in_channels: int,
                 num_segments: int,
                 shift_div: int = 8) -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_int(in_channels, 'in_channels', name)
        check_positive_int(num_segments, 'num_segments', name)
        check_positive_int(shift_div, 'shift_div', name, minimum=2)
        self.in_channels = in_channels
        self.num_segments = num_segments
        self.shift_div = shift_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shift ``(N*T, C, H, W)`` features along ``T``; same shape out."""
        n = x.shape[0] // self.num_segments
        nt, c, h, w = x.shape
        fold = c // self.shift_div
        seq = x.view(n, self.num_segments, c, h * w)
        # Zero padding along T (dim 1) brings in the missing neighbours;
        # built from slices and concatenation only, so the graph has no
        # writes into views (which tracing and ONNX export mishandle).
        from_next = F.pad(seq[:, 1:, :fold], (0, 0, 0, 0, 0, 1))
        from_previous = F.pad(seq[:, :-1, fold:2 * fold], (0, 0, 0, 0, 1, 0))
        out = torch.cat([from_next, from_previous, seq[:, :, 2 * fold:]], 2)
        return out.view(nt, c, h, w)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'num_segments={self.num_segments}, '
                f'shift_div={self.shift_div}')


@MODELS.register_module()
class ChannelwiseTemporalConv(nn.Module):
    """Depth-wise (channel-wise) temporal convolution (TEINet's TIM).

    Each channel is convolved along the segment axis with its own kernel of
    size ``k``; zero padding of ``k // 2`` keeps ``T``. The weights live in
    ``self.conv = nn.Conv1d(C, C, k, padding=k // 2, groups=C, bias=False)``
    (weight ``(C, 1, k)``; index ``k // 2`` weighs segment ``t``,
    ``k // 2 + 1`` segment ``t + 1`` and ``k // 2 - 1`` segment ``t - 1``).

    Args:
        in_channels (int): ``C``.
        num_segments (int): ``T``, segments per video.
        kernel_size (int): Temporal kernel size ``k``, odd. Defaults to 3
            (TEINet's TIM and TDRL, Sec. 4.2).
        init (str): Initial weights. ``'shift'`` (default, TEINet's and
            TDN's choice): channels ``[0, C // shift_div)`` take segment
            ``t + 1``, channels ``[C // shift_div, 2 * C // shift_div)`` take
            segment ``t - 1``, the rest are identity; the module then equals
            :class:`TemporalShift` exactly. ``'identity'``: every channel
            keeps segment ``t`` (TSN at init). ``'random'``: PyTorch's
            default Kaiming-uniform initialisation of ``nn.Conv1d``.
        shift_div (int): Used by ``init='shift'``. Defaults to 8.

    Shape:
        ``(N*T, C, H, W) -> (N*T, C, H, W)``.
    """

    inits = ('shift', 'identity', 'random')

    def __init__(self,
                 in_channels: int,
                 num_segments: int,
                 kernel_size: int = 3,
                 init: str = 'shift',
                 shift_div: int = 8) -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_int(in_channels, 'in_channels', name)
        check_positive_int(num_segments, 'num_segments', name)
        check_positive_int(kernel_size, 'kernel_size', name)
        check_positive_int(shift_div, 'shift_div', name, minimum=2)
        if kernel_size % 2 == 0:
            raise ValueError(
                f'{name}: `kernel_size` must be odd so that the output keeps '
                f'the T segments aligned, got {kernel_size}. Use 3 (TIM).')
        if init not in self.inits:
            raise ValueError(f'{name}: `init` must be one of {self.inits}, '
                             f'got {init!r}.')
        if init == 'shift' and kernel_size < 3:
            raise ValueError(
                f'{name}: init="shift" needs kernel_size >= 3 to reach the '
                f'neighbouring segments, got {kernel_size}. Use kernel_size=3 '
                'or init="identity".')
        self.in_channels = in_channels
        self.num_segments = num_segments
        self.kernel_size = kernel_size
        self.init = init
        self.shift_div = shift_div
        self.conv = nn.Conv1d(
            in_channels,
            in_channels,
            kernel_size,
            padding=kernel_size // 2,
            groups=in_channels,
            bias=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Set ``self.conv.weight`` as chosen by ``init``."""
        weight = self.conv.weight
        if self.init == 'random':
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            return
        centre = self.kernel_size // 2
        weight.zero_()
        if self.init == 'identity':
            weight[:, 0, centre] = 1
            return
        fold = self.in_channels // self.shift_div
        weight[:fold, 0, centre + 1] = 1
        weight[fold:2 * fold, 0, centre - 1] = 1
        weight[2 * fold:, 0, centre] = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``(N*T, C, H, W)`` features along ``T``; same shape out.

        ``out[n, t, c] = sum_j w[c, j] * x[n, t + j - k // 2, c]`` (zero
        outside ``[0, T)``), i.e. ``self.conv`` applied to the sequence of
        ``T`` segments at every spatial position, computed as ``k``
        multiply-adds of the features rolled along ``T`` by ``k // 2 - j``,
        each weight zeroed at the segments whose neighbour
        ``t + j - k // 2`` falls outside ``[0, T)`` (where the roll wraps
        around), in the features' own layout viewed as
        ``(N, T, C, H, W)``.

        Why this form (docs/benchmark.md, issue 24): ``self.conv`` itself
        needs ``T`` last, i.e. a transposed copy of the features in and
        out around a convolution over sequences of only ``T`` steps (2-4
        times the shifted sum on a CPU). In-place accumulation into slices
        of the output is fast in eager PyTorch, but under ``torch.compile``
        the slice writes become ``slice_scatter`` chains that inductor
        fuses with the producer of ``x`` (PEM's attention product) into
        kernels slower than eager (TDRL-R50 742 vs 607 ms). Zero padding
        along ``T`` compiles well but costs eager PyTorch a copy of ``x``
        and its backward three padded gradients (TDRL-R50 training step
        +19 %). A roll is one pass and its gradient is a roll; inductor
        fuses it into one pointwise kernel. The 5-D view matters too: on
        ``(N, T, C, H*W)`` inductor tiled such a kernel 16 segments at a
        time and ran its parallel loop over ``T`` once, on one thread.
        """
        nt, c, h, w = x.shape
        t = self.num_segments
        centre = self.kernel_size // 2
        seq = x.view(nt // t, t, c, h, w)
        weight = self.conv.weight[:, 0, :, None, None]  # (C, k, 1, 1)
        segment = torch.arange(t, device=x.device).view(t, 1, 1, 1)
        out = seq * weight[:, centre]
        for j in range(self.kernel_size):
            if j == centre:
                continue
            neighbour = segment + (j - centre)
            inside = (neighbour >= 0) & (neighbour < t)  # (T, 1, 1, 1)
            # rolled[:, t] = seq[:, t + j - centre], wrapped around.
            rolled = torch.roll(seq, shifts=centre - j, dims=1)
            out = torch.addcmul(out, rolled, weight[:, j] * inside)
        return out.view(nt, c, h, w)

    def extra_repr(self) -> str:
        return (f'num_segments={self.num_segments}, init={self.init!r}, '
                f'shift_div={self.shift_div}')


@MODELS.register_module()
class MotionEnhancementModule(nn.Module):
    """TEINet's Motion Enhanced Module (MEM), a channel attention.

    For the pooled features ``x_t = GAP(X_t)`` (``C``) of segment ``t``,
    ``s_t = W_2 x_{t+1} - W_1 x_t`` (both ``C -> C / reduction``),
    ``a_t = sigmoid(W_3 s_t)`` (``C / reduction -> C``) and the output is
    ``X_t * a_t`` channel-wise. The ``W`` are 1x1 convolutions on a
    1x1 map, written as ``nn.Linear`` with bias. The attention is therefore
    about 0.5 at init, not identity: TEINet has no identity initialisation,
    and the following BatchNorm absorbs the scale.

    Args:
        in_channels (int): ``C``.
        num_segments (int): ``T``, segments per video.
        reduction (int): Channel reduction of ``W_1``/``W_2``. Defaults to
            8 (our choice; TEINet's value is not given in TDRL).
        last_segment (str): The last segment has no successor. ``'identity'``
            (default): it passes unchanged. ``'zero_diff'``: it uses
            ``s_T = 0``, i.e. ``a_T = sigmoid(bias of W_3)``.

    Shape:
        ``(N*T, C, H, W) -> (N*T, C, H, W)``.
    """

    last_segment_modes = ('identity', 'zero_diff')

    def __init__(self,
                 in_channels: int,
                 num_segments: int,
                 reduction: int = 8,
                 last_segment: str = 'identity') -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_int(in_channels, 'in_channels', name)
        check_positive_int(num_segments, 'num_segments', name)
        check_positive_int(reduction, 'reduction', name)
        if in_channels // reduction < 1:
            raise ValueError(
                f'{name}: reduction={reduction} leaves no channels of '
                f'in_channels={in_channels}. Use reduction <= {in_channels}.')
        if last_segment not in self.last_segment_modes:
            raise ValueError(
                f'{name}: `last_segment` must be one of '
                f'{self.last_segment_modes}, got {last_segment!r}.')
        self.in_channels = in_channels
        self.num_segments = num_segments
        self.reduction = reduction
        self.last_segment = last_segment
        hidden = in_channels // reduction
        self.reduce_current = nn.Linear(in_channels, hidden)
        self.reduce_next = nn.Linear(in_channels, hidden)
        self.expand = nn.Linear(hidden, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Excite ``(N*T, C, H, W)`` features channel-wise; same shape out.
        """
        n = x.shape[0] // self.num_segments
        nt, c, h, w = x.shape
        t = self.num_segments
        x = x.view(n, t, c, h, w)
        pooled = x.mean(dim=(3, 4))  # (N, T, C)
        diff = (self.reduce_next(pooled[:, 1:]) -
                self.reduce_current(pooled[:, :-1]))  # (N, T-1, C/r)
        if self.last_segment == 'zero_diff':
            diff = torch.cat([diff, diff.new_zeros(n, 1, diff.shape[-1])], 1)
        attention = torch.sigmoid(self.expand(diff))[..., None, None]
        if self.last_segment == 'identity':
            attention = torch.cat(
                [attention, attention.new_ones(n, 1, c, 1, 1)], 1)
        return (x * attention).view(nt, c, h, w)

    def extra_repr(self) -> str:
        return (f'num_segments={self.num_segments}, '
                f'last_segment={self.last_segment!r}')
