# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TDRL's Progressive Enhancement Module (PEM), Weng et al., ECCV 2020."""
import torch
import torch.nn as nn
from mmaction.registry import MODELS

from .temporal_modules import check_positive_int


@MODELS.register_module()
class ProgressiveEnhancementModule(nn.Module):
    """Progressive Enhancement Module (TDRL, Sec. 3.2, Eq. 3-6).

    A channel attention whose input is a memory of the motion seen so far.
    For the ``T`` segments ``X_t`` (``C x H x W``) of each video:

    * ``x_t = GAP(X_t)`` (``C``);
    * ``d_t = f2(x_{t+1}) - f1(x_t)`` for ``t < T`` (Eq. 4), where ``f1``
      and ``f2`` are separate 1x1 convolutions ``C -> C / reduction`` with
      ReLU; ``d_T`` is fixed (ones, Sec. 3.2);
    * ``m_t = (1 - g_t) * m_{t-1} + g_t * d_t`` with
      ``g_t = sigmoid(W_g [m_{t-1} || d_t])`` (Eq. 5);
    * ``a_t = sigmoid(W_a m_t)`` (``C / reduction -> C``, Eq. 6);
    * ``U_t = X_t * a_t`` channel-wise (Eq. 3).

    The recurrence runs over the segments of each video independently and
    is sequential in ``t``; the loop over ``T`` acts on ``(N, C / r)``
    vectors only, the full features are read by the pooling and written
    once by Eq. 3. Segment ``t``'s output depends on the other segments
    only through ``m_t`` (and, with ``memory_init='last_diff'``, through
    ``m_0 = d_{T-1}``).

    Where the paper is silent we chose (and document here):

    * 1x1 convolutions on the pooled ``1 x 1`` maps are ``nn.Linear``
      layers, all with bias, no normalisation;
    * ``g_t`` has one gate per reduced channel (``gate='channel'``), a
      GRU-like update; ``gate='scalar'`` uses one gate per segment;
    * the attention is about 0.5 at init, as in SENet/TEINet; the paper
      has no identity initialisation.

    Args:
        in_channels (int): ``C``.
        num_segments (int): ``T`` (at least 2), segments per video.
        reduction (int): Channel reduction ratio of ``f1``/``f2``.
            Defaults to 16.
        memory_init (str): ``m_0``. ``'last_diff'`` (default, Sec. 4.2:
            "slightly better"): ``d_{T-1}``, the last real difference;
            ``'first_diff'``: ``d_1``; ``'zeros'``.
        last_diff (str): ``d_T``. ``'ones'`` (default, Sec. 3.2) or
            ``'zeros'``.
        gate (str): ``'channel'`` (default) or ``'scalar'``, see above.

    Shape:
        ``(N*T, C, H, W) -> (N*T, C, H, W)``.
    """

    memory_inits = ('last_diff', 'first_diff', 'zeros')
    last_diffs = ('ones', 'zeros')
    gates = ('channel', 'scalar')

    def __init__(self,
                 in_channels: int,
                 num_segments: int,
                 reduction: int = 16,
                 memory_init: str = 'last_diff',
                 last_diff: str = 'ones',
                 gate: str = 'channel') -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_int(in_channels, 'in_channels', name)
        if not isinstance(num_segments, int) or isinstance(
                num_segments, bool) or num_segments < 2:
            raise ValueError(
                f'{name} compares adjacent segments, so `num_segments` must '
                f'be an integer >= 2, got {num_segments!r}. Set '
                '`model.backbone.num_segments` (and the pipelines\' '
                '`SampleFrames(num_clips=...)`) to 2 or more, e.g. 8, or '
                'build the backbone without it (`enhancement_module=None`).')
        check_positive_int(reduction, 'reduction', name)
        if in_channels // reduction < 1:
            raise ValueError(
                f'{name}: reduction={reduction} leaves no channels of '
                f'in_channels={in_channels}. Use reduction <= {in_channels}.')
        for value, allowed, arg in ((memory_init, self.memory_inits,
                                     'memory_init'),
                                    (last_diff, self.last_diffs, 'last_diff'),
                                    (gate, self.gates, 'gate')):
            if value not in allowed:
                raise ValueError(f'{name}: `{arg}` must be one of {allowed}, '
                                 f'got {value!r}.')
        self.in_channels = in_channels
        self.num_segments = num_segments
        self.reduction = reduction
        self.memory_init = memory_init
        self.last_diff = last_diff
        self.gate = gate
        hidden = in_channels // reduction
        self.hidden_channels = hidden
        self.f1 = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU())
        self.f2 = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU())
        self.gate_proj = nn.Linear(2 * hidden, 1 if gate == 'scalar' else
                                   hidden)  # W_g
        self.excite = nn.Linear(hidden, in_channels)  # W_a

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The enhancement vectors ``a_t`` (Eq. 4-6) of ``(N*T, C, H, W)``
        features, as ``(N, T, C)``.

        Public so that feature visualisations can show what PEM selects.
        """
        n = x.shape[0] // self.num_segments
        c = x.shape[1]
        pooled = x.reshape(n, self.num_segments, c, -1).mean(dim=3)  # GAP
        # Eq. 4; f1 and f2 end with their ReLU.
        diff = self.f2(pooled[:, 1:]) - self.f1(pooled[:, :-1])
        last = torch.ones_like(diff[:, :1]) if self.last_diff == 'ones' \
            else torch.zeros_like(diff[:, :1])
        diff = torch.cat([diff, last], dim=1)  # (N, T, C/r)
        if self.memory_init == 'last_diff':
            memory = diff[:, -2]
        elif self.memory_init == 'first_diff':
            memory = diff[:, 0]
        else:
            memory = torch.zeros_like(diff[:, 0])
        memories = []
        # Eq. 5 is a recurrence in t; the loop acts on (N, C/r) vectors.
        for t in range(self.num_segments):
            gamma = torch.sigmoid(
                self.gate_proj(torch.cat([memory, diff[:, t]], dim=1)))
            memory = (1 - gamma) * memory + gamma * diff[:, t]
            memories.append(memory)
        return torch.sigmoid(self.excite(torch.stack(memories, 1)))  # Eq. 6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Enhance ``(N*T, C, H, W)`` features (Eq. 3); same shape out."""
        attention = self.attention(x).reshape(x.shape[0], x.shape[1], 1, 1)
        return x * attention

    def extra_repr(self) -> str:
        return (f'num_segments={self.num_segments}, '
                f'memory_init={self.memory_init!r}, '
                f'last_diff={self.last_diff!r}, gate={self.gate!r}')
