# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TDRL's Temporal Diversity Loss (Weng et al., ECCV 2020, Sec. 3.3)."""
import math
from typing import Optional

import torch
from mmaction.models.losses import BaseWeightedLoss
from mmaction.registry import MODELS


@MODELS.register_module()
class TemporalDiversityLoss(BaseWeightedLoss):
    """Temporal Diversity Loss (TDRL, Sec. 3.3, Eq. 7).

    For the features ``Z`` of one block, ``(N*T, C, H, W)``, with ``z_t^c``
    channel ``c`` of segment ``t`` flattened over ``H*W``::

        L = w * mean_n sum_{c < C_mu} 1/|I| sum_{(i, j) in I} cos(z_i^c, z_j^c)

    where ``I`` holds the ``T(T-1)`` ordered pairs ``i != j`` and
    ``C_mu = floor(ratio * C)`` (the first channels; Sec. 4.5). With unit
    vectors ``u_i = z_i / ||z_i||`` the pair sum is
    ``||sum_i u_i||^2 - sum_i ||u_i||^2``, so the cost is ``O(T)`` per
    channel, without a loop over pairs or channels, and the unit vectors
    are never materialised (see :meth:`_pair_cosine_sum`). A channel with zero
    norm counts as the zero vector (cosine 0), with finite gradients.
    The loss is computed in float32 (float64 stays float64), also inside
    a bf16/fp16 autocast region.

    Args:
        num_segments (int, optional): ``T`` (>= 2). May be left ``None``
            and given per call instead (the head does so from the
            recognizer's ``num_segs``).
        ratio (float): Fraction of channels regularised, in ``[0, 1]``.
            Defaults to 0.5 (Sec. 4.2, Table 5).
        loss_weight (float): ``w``, the paper's ``lambda``. Defaults to
            2e-4 (Sec. 4.2, Table 7).
        eps (float): Norms below ``eps`` are treated as zero.
            Defaults to 1e-12.
    """

    def __init__(self,
                 num_segments: Optional[int] = None,
                 ratio: float = 0.5,
                 loss_weight: float = 2e-4,
                 eps: float = 1e-12) -> None:
        super().__init__(loss_weight=loss_weight)
        if num_segments is not None:
            self._check_num_segments(num_segments)
        if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) \
                or not 0 <= ratio <= 1:
            raise ValueError(
                f'TemporalDiversityLoss: `ratio` is the fraction of channels '
                f'to regularise and must lie in [0, 1], got {ratio!r}. The '
                'paper uses 0.5 (Table 5).')
        self.num_segments = num_segments
        self.ratio = float(ratio)
        self.eps = eps

    @staticmethod
    def _check_num_segments(num_segments) -> None:
        if not isinstance(num_segments, int) or isinstance(
                num_segments, bool) or num_segments < 2:
            raise ValueError(
                'TemporalDiversityLoss compares the segments of a video, so '
                f'`num_segments` must be an integer >= 2, got '
                f'{num_segments!r}. Sample at least 2 segments per video '
                '(e.g. `SampleFrames(num_clips=8)`) or remove `loss_td`.')

    def _forward(self,
                 z: torch.Tensor,
                 num_segments: Optional[int] = None) -> torch.Tensor:
        """Eq. 7 without the weight.

        Args:
            z (Tensor): Features ``(N*T, C, H, W)`` (any trailing spatial
                dims are flattened).
            num_segments (int, optional): ``T`` for this call; defaults to
                the one given at construction.

        Returns:
            Tensor: A scalar, float32 (float64 for float64 input).
        """
        if num_segments is None:
            num_segments = self.num_segments
        if num_segments is None:
            raise ValueError(
                'TemporalDiversityLoss needs `num_segments`: set it in the '
                'loss config (`loss_td=dict(type=\'TemporalDiversityLoss\', '
                'num_segments=8)`) or pass it to the call.')
        self._check_num_segments(num_segments)
        if z.dim() < 2:
            raise ValueError(
                'TemporalDiversityLoss expects features of shape '
                f'(N*T, C, H, W), got {tuple(z.shape)}.')
        if z.shape[0] % num_segments != 0:
            raise ValueError(
                f'TemporalDiversityLoss got {z.shape[0]} segment features, '
                f'which is not a multiple of num_segments={num_segments}. '
                'Set `num_segments` to the segments per video the backbone '
                'sees (for multi-view training set it explicitly in '
                '`loss_td`).')
        channels = math.floor(self.ratio * z.shape[1])
        num_videos = z.shape[0] // num_segments
        positions = math.prod(z.shape[2:])
        dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z[:, :channels].to(dtype)
            z = z.reshape(num_videos, num_segments, channels, positions)
            return self._pair_cosine_sum(z) / (num_segments *
                                               (num_segments - 1))

    def _pair_cosine_sum(self, z: torch.Tensor) -> torch.Tensor:
        """``mean_n sum_c sum_{i != j} cos(z_i^c, z_j^c)`` of ``z``,
        ``(N, T, C_mu, P)``, as ``||sum_i u_i||^2 - sum_i ||u_i||^2``.

        Only the ``(N, T, C_mu)`` inverse norms are kept: ``sum_i u_i`` is
        one weighted sum over ``T`` and ``||u_i||^2 = (|z_i| / |z_i|)^2``
        (1, or 0 for a vanishing ``z_i``), so the unit vectors ``u_i`` are
        never stored and the full-size features are read twice (norms,
        weighted sum) in the forward pass.
        """
        norm = torch.linalg.vector_norm(z, dim=-1)  # (N, T, C_mu)
        valid = norm > self.eps
        # Where the norm vanishes, use 1 / 1 inside and 0 outside the
        # ``where``: u = 0 there, and no 0/0 reaches the value or gradient.
        inv_norm = torch.where(
            valid, 1 / torch.where(valid, norm, torch.ones_like(norm)),
            torch.zeros_like(norm))
        unit_sum = (z * inv_norm[..., None]).sum(dim=1)  # (N, C_mu, P)
        unit_sq_norms = (norm * inv_norm).square().sum(dim=1)  # (N, C_mu)
        pair_sum = unit_sum.square().sum(dim=-1) - unit_sq_norms
        return pair_sum.sum(dim=1).mean()
