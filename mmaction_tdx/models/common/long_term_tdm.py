# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TDN's long-term temporal difference module (L-TDM), Sec. 3.3.

The module excites the features of every segment with the aligned,
multi-scale difference to its neighbouring segments (Eqs. (2), (4)-(6)).
The default is the official release (``MCG-NJU/TDN``, ``ops/base_module.py``,
class ``mSEModule``); where the release differs from the paper text, the
paper's form is an option (see :class:`LongTermTDM`).
"""
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmaction.utils import ConfigType, OptConfigType
from mmcv.cnn import ConvModule, build_conv_layer
from mmengine.model import BaseModule

from .fast_ops import (
    ExcitationFunction,
    add_upsampled_,
    avg_pool2x2,
    conv2d_like,
    excitation_supported,
    folded_conv_bn,
    is_foldable_conv_bn,
)
from .temporal_modules import (
    ChannelwiseTemporalConv,
    check_positive_int,
    check_segment_batch,
)


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
    2. multi-scale (Eq. (5)): ``(D + BN(Conv3x3(D)) +
       Up(BN(Conv3x3(AvgPool2x2(D))))) / 3`` with nearest upsampling (the
       release; the paper says bilinear).
    3. ``Z = BN(Conv1x1(.))`` back to ``C`` channels and
       ``A = sigmoid(Z) - 0.5``; the forward and backward ``A`` share all
       layers and are averaged (Eq. (6)).
    4. output ``F + F * A`` (Eq. (2)).

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
            with ``Z`` computed from the spatially averaged difference, one
            weight per channel; ``'add'`` (Table 1(c), "F + G"): ``F + Z``,
            the difference representation added without attention.
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

    def __init__(self,
                 in_channels: int,
                 num_segments: int,
                 reduction: int = 16,
                 temporal_operator: str = 'difference',
                 multi_scale: bool = True,
                 bidirectional: bool = True,
                 fusion: str = 'attention',
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
        if temporal_operator not in self.temporal_operators:
            raise ValueError(
                f'{name}: `temporal_operator` must be one of '
                f'{self.temporal_operators}, got {temporal_operator!r}.')
        if fusion not in self.fusions:
            raise ValueError(f'{name}: `fusion` must be one of '
                             f'{self.fusions}, got {fusion!r}.')
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
        self.backward_full_scale_from_forward = \
            backward_full_scale_from_forward

        hidden = in_channels // reduction
        self.squeeze = ConvModule(
            in_channels,
            hidden,
            kernel_size=1,
            bias=False,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None)
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
            self.full_scale = ConvModule(
                hidden,
                hidden,
                kernel_size=3,
                padding=1,
                bias=False,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=None)
            self.half_scale = ConvModule(
                hidden,
                hidden,
                kernel_size=3,
                padding=1,
                bias=False,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=None)
        self.expand = ConvModule(
            hidden,
            in_channels,
            kernel_size=1,
            bias=False,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None)

    def _neighbour_relation(self, squeezed: torch.Tensor,
                            aligned: torch.Tensor,
                            direction: str) -> torch.Tensor:
        """Relate every segment to its aligned neighbour (Eq. (4)).

        Args:
            squeezed (Tensor): ``S``, ``(N, T, C/r, H, W)``.
            aligned (Tensor): ``Conv_cw(S)``, ``(N, T, C/r, H, W)``.
            direction (str): ``'forward'`` (neighbour ``t + 1``) or
                ``'backward'`` (neighbour ``t - 1``).

        Returns:
            Tensor: ``(N*T, C/r, H, W)``, zero where the neighbour is
            missing.
        """
        if direction == 'forward':
            neighbour, current = aligned[:, 1:], squeezed[:, :-1]
        else:
            neighbour, current = aligned[:, :-1], squeezed[:, 1:]
        if self.temporal_operator == 'difference':
            relation = neighbour - current
        else:
            relation = (neighbour + current) / 2
        missing = relation.new_zeros(relation[:, :1].shape)
        if direction == 'forward':
            relation = torch.cat([relation, missing], dim=1)
        else:
            relation = torch.cat([missing, relation], dim=1)
        return relation.flatten(0, 1)

    def _multi_scale(
        self,
        diff: torch.Tensor,
        full_scale_input: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Average the difference over three receptive fields (Eq. (5)).

        Args:
            diff (Tensor): ``(N*T, C/r, H, W)``.
            full_scale_input (Tensor, optional): Replaces ``diff`` as the
                input of the full-scale conv (the Dec-2020 quirk).

        Returns:
            tuple: the combined ``(N*T, C/r, H, W)`` map and the full-scale
            branch output (needed by the quirk), or ``(diff, None)`` when
            ``multi_scale`` is off.
        """
        if not self.multi_scale:
            return diff, None
        half = self.half_scale(F.avg_pool2d(diff, kernel_size=2, stride=2))
        half = F.interpolate(half, size=diff.shape[-2:], mode='nearest')
        full = self.full_scale(
            diff if full_scale_input is None else full_scale_input)
        # Same summation order as the release, for bitwise-close outputs.
        combined = 1.0 / 3.0 * diff + 1.0 / 3.0 * half + 1.0 / 3.0 * full
        return combined, full

    def _excitation(self, relation: torch.Tensor) -> torch.Tensor:
        """Map a ``(N*T, C/r, H, W)`` combined map to ``Z`` or ``A``."""
        if self.fusion == 'channel_attention':
            relation = F.adaptive_avg_pool2d(relation, 1)
        z = self.expand(relation)
        if self.fusion == 'add':
            return z
        return torch.sigmoid(z) - 0.5

    def forward(self,
                x: torch.Tensor,
                temporal: Optional[nn.Module] = None) -> torch.Tensor:
        """Excite segment features with their temporal differences.

        Runs :meth:`fast_forward` where it applies (:meth:`uses_fast_path`,
        true for the release's settings), else :meth:`reference_forward`;
        both compute the same function.

        Args:
            x (Tensor): ``(N*T, C, H, W)``.
            temporal (nn.Module, optional): A module applied to the result
                (TDN's temporal conv): ``self(x, temporal)`` equals
                ``temporal(self(x))``, but in training a
                :class:`ChannelwiseTemporalConv` is fused into the
                excitation (see :class:`ExcitationFunction`), which keeps
                less for the backward pass.

        Returns:
            Tensor: ``(N*T, C, H, W)``.
        """
        if self.multi_scale and x.dim() == 4 and min(x.shape[-2:]) < 2:
            raise ValueError(
                f'{type(self).__name__}: its half-resolution branch (2x2 '
                f'average pooling) needs feature maps of at least 2x2, got '
                f'{tuple(x.shape[-2:])}. The input resolution is too small '
                'for this stage: use larger frames (e.g. >= 48 px for a '
                'ResNet) or build the L-TDM with multi_scale=False.')
        if self.uses_fast_path():
            return self.fast_forward(x, temporal)
        out = self.reference_forward(x)
        return out if temporal is None else temporal(out)

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The straightforward form: one direction after the other, each
        through the layers as written in Eqs. (4)-(6) and the release.

        Args:
            x (Tensor): ``(N*T, C, H, W)``.

        Returns:
            Tensor: ``(N*T, C, H, W)``.
        """
        n = check_segment_batch(x, self.num_segments, type(self).__name__)
        squeezed = self.squeeze(x)
        aligned = self.align(squeezed)
        squeezed = squeezed.view(n, self.num_segments, *squeezed.shape[1:])
        aligned = aligned.view(n, self.num_segments, *aligned.shape[1:])

        directions = ['forward', 'backward'] if self.bidirectional \
            else ['forward']
        excitations: List[torch.Tensor] = []
        forward_full = None
        # Directions run one after the other (not batched) so that in
        # training every BN sees one direction per call, as in the release.
        for direction in directions:
            relation = self._neighbour_relation(squeezed, aligned, direction)
            quirk_input = forward_full if (
                direction == 'backward'
                and self.backward_full_scale_from_forward) else None
            combined, full = self._multi_scale(relation, quirk_input)
            if direction == 'forward':
                forward_full = full
            excitations.append(self._excitation(combined))

        if len(excitations) == 2:
            excitation = 0.5 * excitations[0] + 0.5 * excitations[1]
        else:
            excitation = excitations[0]
        if self.fusion == 'add':
            return x + excitation
        return x + x * excitation

    # ------------------------------------------------------------------
    # Fast path: same function, fewer passes over full-size tensors.

    def uses_fast_path(self) -> bool:
        """Whether :meth:`forward` runs :meth:`fast_forward`.

        It covers the attention fusions (the release's ``'attention'`` and
        ``'channel_attention'``) with BatchNorm layers; the ``'add'``
        fusion and the Dec-2020 quirk use :meth:`reference_forward`.
        """
        layers = [self.squeeze, self.expand]
        if self.multi_scale:
            layers += [self.full_scale, self.half_scale]
        return (self.fusion in ('attention', 'channel_attention')
                and not self.backward_full_scale_from_forward
                and all(is_foldable_conv_bn(m) and m.norm.track_running_stats
                        for m in layers))

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _relate(self, neighbour: torch.Tensor,
                current: torch.Tensor) -> torch.Tensor:
        if self.temporal_operator == 'difference':
            return neighbour - current
        return (neighbour + current) / 2

    def _all_relations(self, squeezed: torch.Tensor,
                       aligned: torch.Tensor) -> torch.Tensor:
        """Both directions' relations (Eq. (4)) in one batch.

        Args:
            squeezed (Tensor): ``S``, ``(N, T, C/r, H, W)``.
            aligned (Tensor): ``Conv_cw(S)``, ``(N, T, C/r, H, W)``.

        Returns:
            Tensor: ``(D*N*T, C/r, H, W)``, direction-major (forward
            first), so each direction is a contiguous half; zero where the
            neighbour is missing. Written once, without padded copies.
        """
        n, t = squeezed.shape[:2]
        relations = squeezed.new_zeros(self.num_directions,
                                       *squeezed.shape)
        relations[0, :, :-1] = self._relate(aligned[:, 1:], squeezed[:, :-1])
        if self.bidirectional:
            relations[1, :, 1:] = self._relate(aligned[:, :-1],
                                               squeezed[:, 1:])
        return relations.view(-1, *squeezed.shape[2:])

    def _per_direction(self, norm: nn.Module,
                       y: torch.Tensor) -> torch.Tensor:
        """``norm`` applied to each direction's half of ``y`` separately,
        so that a training-mode BN normalises (and updates its running
        statistics) per direction, forward first, as the release's two
        sequential calls do."""
        if self.num_directions == 1 or not norm.training:
            return norm(y)
        return torch.cat([norm(part) for part in y.chunk(2)])

    def _combined_train(self, relations: torch.Tensor) -> torch.Tensor:
        """Eq. (5) with BN layers that may be in training mode."""
        if not self.multi_scale:
            return relations
        half = self.half_scale.conv(
            avg_pool2x2(relations))
        half = self._per_direction(self.half_scale.norm, half)
        full = self._per_direction(self.full_scale.norm,
                                   self.full_scale.conv(relations))
        combined = add_upsampled_(torch.add(relations, full), half)
        return combined.mul_(1.0 / 3.0)

    def _combined_eval(self, relations: torch.Tensor) -> torch.Tensor:
        """Eq. (5) with eval-mode BNs folded into the convs.

        ``(D + BN(Conv(D))) / 3`` is one conv: the BN's affine map and the
        identity (at the kernel centre) are folded into its weights; the
        half-scale branch is added into its output in place.
        """
        if not self.multi_scale:
            return relations
        full_conv = self.full_scale.conv
        weight, bias = folded_conv_bn(self.full_scale, scale=1.0 / 3.0)
        if self._identity_foldable(full_conv):
            centre = full_conv.kernel_size[0] // 2
            identity = torch.eye(
                weight.shape[0], dtype=weight.dtype, device=weight.device)
            weight = weight.clone()
            weight[:, :, centre, centre] += identity / 3.0
            combined = conv2d_like(full_conv, relations, weight, bias)
        else:
            combined = conv2d_like(full_conv, relations, weight, bias)
            combined.add_(relations, alpha=1.0 / 3.0)
        weight, bias = folded_conv_bn(self.half_scale, scale=1.0 / 3.0)
        half = conv2d_like(self.half_scale.conv,
                           avg_pool2x2(relations),
                           weight, bias)
        return add_upsampled_(combined, half)

    @staticmethod
    def _identity_foldable(conv: nn.Conv2d) -> bool:
        k = conv.kernel_size
        return (conv.groups == 1 and conv.in_channels == conv.out_channels
                and k[0] == k[1] and k[0] % 2 == 1
                and conv.padding == (k[0] // 2, k[1] // 2)
                and conv.stride == (1, 1) and conv.dilation == (1, 1))

    def _attention_difference(self, combined: torch.Tensor,
                              num_frames: int) -> torch.Tensor:
        """``sigmoid(Z_fwd) + sigmoid(Z_bwd) - 1`` (two directions) or
        ``sigmoid(Z) - 0.5`` (one), ``Z = BN(Conv1x1(combined))``.

        With eval-mode BN the BN is folded into the conv, and the backward
        direction is convolved with negated weights, since
        ``sigmoid(z) - 1 = -sigmoid(-z)``: the sum is then one subtraction.
        """
        conv = self.expand.conv
        parts = combined.split(num_frames)
        if not self.expand.norm.training:
            weight, bias = folded_conv_bn(self.expand)
            forward = conv2d_like(conv, parts[0], weight, bias).sigmoid_()
            # Without autograd the result reuses the (warm) buffer of a
            # full-size map rather than allocating another one.
            inplace = not torch.is_grad_enabled()
            if self.num_directions == 1:
                return forward.sub_(0.5) if inplace else forward - 0.5
            backward = conv2d_like(conv, parts[1], -weight,
                                   -bias).sigmoid_()
            return forward.sub_(backward) if inplace else forward - backward
        z = conv(combined)
        attention = [
            self.expand.norm(part).sigmoid_()
            for part in z.split(num_frames)
        ]
        if self.num_directions == 1:
            return attention[0] - 0.5
        return torch.add(attention[0], attention[1]).sub_(1.0)

    def _fusable_temporal(self, temporal: Optional[nn.Module]) -> bool:
        return (isinstance(temporal, ChannelwiseTemporalConv)
                and temporal.num_segments == self.num_segments)

    def fast_forward(self,
                     x: torch.Tensor,
                     temporal: Optional[nn.Module] = None) -> torch.Tensor:
        """:meth:`reference_forward` with both directions as one batch.

        The directions' relations form one ``(2*N*T, C/r, H, W)`` batch,
        so each conv runs once for both (BNs in training mode still
        normalise each direction on its own); eval-mode BNs are folded
        into the convs; the half-scale map is added without materialising
        its upsampled copy; and the excitation is
        ``x + x * (A_fwd + A_bwd) / 2`` written as one ``addcmul`` over
        ``sigmoid(Z_fwd) + sigmoid(Z_bwd) - 1``, so the only full-size
        (``C``-channel) tensors are the two ``Z`` and their difference.

        In training (BN in training mode) the excitation runs in
        :class:`ExcitationFunction`, which also applies ``temporal`` when
        it is a channel-wise temporal conv.

        Args:
            x (Tensor): ``(N*T, C, H, W)``.
            temporal (nn.Module, optional): Applied to the result.

        Returns:
            Tensor: ``(N*T, C, H, W)``.
        """
        n = check_segment_batch(x, self.num_segments, type(self).__name__)
        if self.squeeze.norm.training:
            squeezed = self.squeeze(x)
        else:
            squeezed = conv2d_like(self.squeeze.conv, x,
                                   *folded_conv_bn(self.squeeze))
        aligned = self.align(squeezed)
        shape = (n, self.num_segments, *squeezed.shape[1:])
        relations = self._all_relations(
            squeezed.view(shape), aligned.view(shape))
        norms = [self.expand.norm]
        if self.multi_scale:
            norms += [self.full_scale.norm, self.half_scale.norm]
        if any(norm.training for norm in norms):
            combined = self._combined_train(relations)
        else:
            combined = self._combined_eval(relations)
        if self.fusion == 'channel_attention':
            combined = F.adaptive_avg_pool2d(combined, 1)
        norm = self.expand.norm
        if norm.training and excitation_supported(self.expand):
            fuse = self._fusable_temporal(temporal)
            out = ExcitationFunction.apply(
                x, combined, self.expand.conv.weight, norm.weight,
                norm.bias, temporal.conv.weight[:, 0] if fuse else None,
                self.expand, self.num_segments)
            if temporal is not None and not fuse:
                out = temporal(out)
            return out
        difference = self._attention_difference(combined, x.shape[0])
        value = 0.5 if self.bidirectional else 1.0
        if not torch.is_grad_enabled() and difference.shape == x.shape:
            # Inference: write into the difference's buffer (see above).
            out = torch.addcmul(x, x, difference, value=value,
                                out=difference)
        else:
            out = torch.addcmul(x, x, difference, value=value)
        return out if temporal is None else temporal(out)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'num_segments={self.num_segments}, '
                f'reduction={self.reduction}, '
                f'temporal_operator={self.temporal_operator!r}, '
                f'multi_scale={self.multi_scale}, '
                f'bidirectional={self.bidirectional}, '
                f'fusion={self.fusion!r}')
