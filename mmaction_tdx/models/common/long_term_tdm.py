# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TDN's long-term temporal difference module (L-TDM), Sec. 3.3.

The module excites the features of every segment with the aligned,
multi-scale difference to its neighbouring segments (Eqs. (2), (4)-(6)).
The default is the official release (``MCG-NJU/TDN``, ``ops/base_module.py``,
class ``mSEModule``); where the release differs from the paper text, the
paper's form is an option (see :class:`LongTermTDM`).
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmaction.utils import ConfigType, OptConfigType
from mmcv.cnn import ConvModule, build_conv_layer, fuse_conv_bn
from mmengine.model import BaseModule

from .temporal_modules import check_positive_int


@MODELS.register_module()
class LongTermTDM(BaseModule):
    """Long-term temporal difference module (L-TDM) of TDN (Sec. 3.3).

    With ``F_t`` the input of segment ``t`` and ``S_t = BN(Conv1x1(F_t))``
    its squeezed (``C -> C / reduction``) features:

    1. aligned difference (Eq. (4)): ``D_t = Conv_cw(S_{t+1}) - S_t``
       forward and ``Conv_cw(S_{t-1}) - S_t`` backward, where ``Conv_cw`` is
       a channel-wise 3x3 convolution ("alignment"). The difference is zero
       where the neighbour does not exist (last segment forward, first
       segment backward). This is the release's sign; Eq. (4) writes
       ``F_t - Conv(F_{t+1})``. Everything between the difference and the
       sigmoid is affine, so negating the difference is absorbed by the
       learned weights (e.g. of the last 1x1 conv): the same family of
       functions, but trained weights do not carry over between signs.
    2. multi-scale (Eq. (5)): ``M = (D + BN(Conv3x3(D)) +
       Up(BN(Conv3x3(AvgPool2x2(D))))) / 3``, ``Up`` the upsampling back
       to ``D``'s size (nearest in the release, bilinear in the paper).
    3. ``Z = BN(Conv1x1(M))`` back to ``C`` channels and
       ``A = sigmoid(Z) - 0.5``; the forward and backward ``A`` share all
       layers and are averaged (Eq. (6)).
    4. output ``F + F * A`` (Eq. (2)).

    In training mode every BN normalises one direction at a time, forward
    first, as the release's two sequential calls do.

    Args:
        in_channels (int): ``C``.
        num_segments (int): ``T``, segments per video.
        reduction (int): Channel reduction ``r`` of the squeeze conv.
            Defaults to 16 (release).
        temporal_operator (str): ``'difference'`` (default) or
            ``'average'``, which replaces ``Conv_cw(S_n) - S_t`` with
            ``(Conv_cw(S_n) + S_t) / 2`` (Table 1(a), "avg").
        multi_scale (bool): Use the three-branch multi-scale sum (step 2).
            ``False`` feeds the difference straight to step 3
            (Table 1(c)). Defaults to True.
        bidirectional (bool): Average the forward and backward directions.
            ``False`` uses the forward direction only (Table 1(c)).
            Defaults to True.
        fusion (str): How ``Z`` enters the features.
            ``'attention'`` (default, Eq. (2)): ``F + F * (sigmoid(Z) -
            0.5)``; ``'channel_attention'`` (Table 1(c), TEA-like): the same
            with ``Z`` computed from the spatially averaged ``M``, one
            weight per channel; ``'add'`` (Table 1(c), "F + G"): ``F + Z``,
            the difference representation added without attention (both
            directions: ``F + (Z_fwd + Z_bwd) / 2``).
        upsample_mode (str): ``Up`` of step 2: ``'nearest'`` (default,
            the release) or ``'bilinear'`` (the paper's text,
            ``align_corners=False``).
        backward_full_scale_from_forward (bool): Reproduce the first public
            release (Dec 2020; fixed after MCG-NJU/TDN issue #6), whose
            backward direction applied the full-scale 3x3 conv+BN to the
            *forward* direction's full-scale output instead of the backward
            difference. Only for checkpoints trained with that code.
            Defaults to False.
        conv_cfg (dict): Conv layer config. Defaults to ``dict(type='Conv')``.
        norm_cfg (dict): Norm layer config. Defaults to
            ``dict(type='BN2d', requires_grad=True)``.
        init_cfg (dict, optional): MMEngine init config. Defaults to None.

    Shape:
        ``(N*T, C, H, W) -> (N*T, C, H, W)``.
    """

    temporal_operators = ('difference', 'average')
    fusions = ('attention', 'channel_attention', 'add')
    upsample_modes = ('nearest', 'bilinear')

    def __init__(self,
                 in_channels: int,
                 num_segments: int,
                 reduction: int = 16,
                 temporal_operator: str = 'difference',
                 multi_scale: bool = True,
                 bidirectional: bool = True,
                 fusion: str = 'attention',
                 upsample_mode: str = 'nearest',
                 backward_full_scale_from_forward: bool = False,
                 conv_cfg: ConfigType = dict(type='Conv'),
                 norm_cfg: ConfigType = dict(type='BN2d', requires_grad=True),
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        check_positive_int(in_channels, 'in_channels', name)
        check_positive_int(num_segments, 'num_segments', name)
        check_positive_int(reduction, 'reduction', name)
        if in_channels // reduction < 1:
            raise ValueError(
                f'{name}: reduction={reduction} leaves no channels of '
                f'in_channels={in_channels}. Use reduction <= {in_channels}.')
        for value, arg, allowed in (
            (temporal_operator, 'temporal_operator', self.temporal_operators),
            (fusion, 'fusion', self.fusions),
            (upsample_mode, 'upsample_mode', self.upsample_modes),
        ):
            if value not in allowed:
                raise ValueError(f'{name}: `{arg}` must be one of {allowed}, '
                                 f'got {value!r}.')
        if backward_full_scale_from_forward and not (multi_scale
                                                     and bidirectional):
            raise ValueError(
                f'{name}: backward_full_scale_from_forward=True reproduces a '
                'quirk of the multi-scale, bidirectional release module; it '
                'needs multi_scale=True and bidirectional=True.')
        self.in_channels = in_channels
        self.num_segments = num_segments
        self.reduction = reduction
        self.temporal_operator = temporal_operator
        self.multi_scale = multi_scale
        self.bidirectional = bidirectional
        self.fusion = fusion
        self.upsample_mode = upsample_mode
        self.backward_full_scale_from_forward = \
            backward_full_scale_from_forward

        hidden = in_channels // reduction

        def conv_bn(cin, cout, kernel_size):
            return ConvModule(
                cin,
                cout,
                kernel_size=kernel_size,
                padding=kernel_size // 2,
                bias=False,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=None)

        self.squeeze = conv_bn(in_channels, hidden, 1)
        # Channel-wise smoothing of the neighbour before the difference
        # relieves the spatial misalignment between segments (Eq. (4)).
        self.align = build_conv_layer(
            conv_cfg,
            hidden,
            hidden,
            kernel_size=3,
            padding=1,
            groups=hidden,
            bias=False)
        if multi_scale:
            self.full_scale = conv_bn(hidden, hidden, 3)
            self.half_scale = conv_bn(hidden, hidden, 3)
        self.expand = conv_bn(hidden, in_channels, 1)

    def _relation(self, neighbour: torch.Tensor,
                  current: torch.Tensor) -> torch.Tensor:
        """The temporal operator of Eq. (4) (or its Table 1(a) average)."""
        if self.temporal_operator == 'difference':
            return neighbour - current
        return (neighbour + current) / 2

    def _multi_scale(
            self, diff: torch.Tensor, full_scale_input: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Eq. (5)'s sum of three receptive fields, averaged.

        Args:
            diff (Tensor): ``D``, ``(N*T, C/r, H, W)``.
            full_scale_input (Tensor): The full-scale branch's input:
                ``D``, or for the Dec-2020 quirk the forward direction's
                full-scale output.

        Returns:
            Tensor: ``M`` and the full-scale branch's output, both
            ``(N*T, C/r, H, W)``.
        """
        full = self.full_scale(full_scale_input)
        half = self.half_scale(F.avg_pool2d(diff, kernel_size=2, stride=2))
        half = F.interpolate(
            half,
            size=diff.shape[-2:],
            mode=self.upsample_mode,
            **({} if self.upsample_mode == 'nearest' else dict(
                align_corners=False)))
        return (diff + half + full) / 3, full

    def _logits(self, relation: torch.Tensor) -> torch.Tensor:
        """``Z = BN(Conv1x1(.))`` of a combined map (step 3)."""
        if self.fusion == 'channel_attention':
            relation = F.adaptive_avg_pool2d(relation, 1)
        return self.expand(relation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Excite segment features with their temporal differences.

        Args:
            x (Tensor): ``F``, ``(N*T, C, H, W)``.

        Returns:
            Tensor: ``(N*T, C, H, W)``.
        """
        n = x.shape[0] // self.num_segments
        if self.multi_scale and min(x.shape[-2:]) < 2:
            raise ValueError(
                f'{type(self).__name__}: its half-resolution branch (2x2 '
                f'average pooling) needs feature maps of at least 2x2, got '
                f'{tuple(x.shape[-2:])}. The input resolution is too small '
                'for this stage: use larger frames (e.g. >= 48 px for a '
                'ResNet) or build the L-TDM with multi_scale=False.')
        squeezed = self.squeeze(x)
        aligned = self.align(squeezed)
        shape = (n, self.num_segments, *squeezed.shape[1:])
        squeezed, aligned = squeezed.view(shape), aligned.view(shape)
        # Zero relation where the neighbour is missing: pad T (dim 1).
        forward_diff = F.pad(
            self._relation(aligned[:, 1:], squeezed[:, :-1]),
            (0, 0, 0, 0, 0, 0, 0, 1)).flatten(0, 1)
        forward_full = None
        if self.multi_scale:
            forward_diff, forward_full = self._multi_scale(
                forward_diff, forward_diff)
        z_forward = self._logits(forward_diff)
        if not self.bidirectional:
            if self.fusion == 'add':
                return x + z_forward
            return torch.addcmul(x, x, torch.sigmoid(z_forward) - 0.5)

        backward_diff = F.pad(
            self._relation(aligned[:, :-1], squeezed[:, 1:]),
            (0, 0, 0, 0, 0, 0, 1, 0)).flatten(0, 1)
        if self.multi_scale:
            backward_diff, _ = self._multi_scale(
                backward_diff, forward_full
                if self.backward_full_scale_from_forward else backward_diff)
        z_backward = self._logits(backward_diff)
        if self.fusion == 'add':
            return torch.add(x, z_forward + z_backward, alpha=0.5)
        # Eqs. (2), (6): F + F * ((s_f - 1/2) + (s_b - 1/2)) / 2, written
        # as F + 1/2 F (s_f + s_b - 1) (two full-size passes fewer).
        gate = torch.sigmoid(z_forward) + torch.sigmoid(z_backward)
        return torch.addcmul(x, x, gate - 1.0, value=0.5)

    def switch_to_deploy(self) -> None:
        """Fold every eval-mode BN into the conv before it, in place.

        A one-time reparameterisation for inference: with the BNs'
        running statistics (eval mode) the module computes the same
        function with fewer passes over the ``C``-channel maps (the BN
        after the expand conv). Afterwards the BNs are ``nn.Identity``;
        do not train the module further.
        """
        fuse_conv_bn(self)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'num_segments={self.num_segments}, '
                f'reduction={self.reduction}, '
                f'temporal_operator={self.temporal_operator!r}, '
                f'multi_scale={self.multi_scale}, '
                f'bidirectional={self.bidirectional}, '
                f'fusion={self.fusion!r}, '
                f'upsample_mode={self.upsample_mode!r}')
