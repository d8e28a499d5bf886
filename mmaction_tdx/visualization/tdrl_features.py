# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The feature maps of TDRL's Figs. 3 and 4 (Weng et al., ECCV 2020).

* Fig. 3 (:func:`pem_channel_maps`): for the first block of ``layer1``,
  per frame, the features before the PEM as an RGB image (three channel
  groups averaged), the mean of the ``k`` channels the PEM enhances most
  (highest attention ``a_t``) and of the ``k`` it enhances least (lowest
  ``a_t``, i.e. suppresses most).
* Fig. 4 (:func:`tm_feature_maps`): for the last block of ``layer2``,
  the features before and after the temporal module (TM), to compare a
  model trained with the TD loss against one trained without.

Each works on the input one :class:`~mmaction_tdx.models.backbones.
resnet_tdrl.TDRLBlock` receives (captured with
:func:`~mmaction_tdx.visualization.features.capture_inputs`) and calls the
block's own modules, so they show what the trained model computes.
"""
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn as nn

from .features import channel_groups_rgb, scale_to_unit


def _check_tdrl_block(block: nn.Module, needs: str) -> None:
    for attr in ('enhancement', 'temporal', 'enhancement_position'):
        if not hasattr(block, attr):
            raise TypeError(
                f'{type(block).__name__} is not a TDRL block (no '
                f'`{attr}`); name a block of ResNetTDRL, e.g. '
                'backbone.layer1.0.')
    if getattr(block, needs) is None:
        raise ValueError(f'This block has no `{needs}` module.')


def pem_input(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the block's PEM receives, ``(N*T, C, H, W)``, from the block's
    input ``x``: ``x`` itself (PEM before the TM) or the TM's output."""
    if block.enhancement_position == 'after_tm' and \
            block.temporal is not None:
        return block.temporal(x)
    return x


@torch.no_grad()
def pem_channel_maps(block: nn.Module,
                     x: torch.Tensor,
                     k: int = 10) -> Dict[str, np.ndarray]:
    """TDRL Fig. 3 for one video.

    Args:
        block (nn.Module): A ``TDRLBlock`` with a PEM
            (``ProgressiveEnhancementModule``, which has ``attention``).
        x (Tensor): The block's input for one video, ``(T, C, H, W)``.
        k (int): Channels averaged per map (the paper: 10).

    Returns:
        dict: ``before_rgb`` ``(T, H, W, 3)`` in ``[0, 1]``;
        ``enhanced`` and ``suppressed`` ``(T, H, W)`` in ``[0, 1]`` (each
        scaled jointly over its frames); ``attention`` ``(T, C)``;
        ``enhanced_channels`` / ``suppressed_channels`` ``(T, k)``.
    """
    _check_tdrl_block(block, 'enhancement')
    if not hasattr(block.enhancement, 'attention'):
        raise TypeError(
            f'{type(block.enhancement).__name__} exposes no channel '
            'attention; Fig. 3 needs a ProgressiveEnhancementModule.')
    features = pem_input(block, x)
    channels = features.shape[1]
    if not 1 <= k <= channels:
        raise ValueError(f'k={k} must lie in [1, {channels}] (channels).')
    attention = block.enhancement.attention(features)[0]  # (T, C)
    top = attention.topk(k, dim=1).indices
    bottom = attention.topk(k, dim=1, largest=False).indices

    def mean_of(indices: torch.Tensor) -> torch.Tensor:
        picked = torch.stack(
            [f[i] for f, i in zip(features, indices)])  # (T, k, H, W)
        return picked.mean(dim=1)

    return dict(
        before_rgb=channel_groups_rgb(features),
        enhanced=scale_to_unit(mean_of(top)),
        suppressed=scale_to_unit(mean_of(bottom)),
        attention=attention.cpu().numpy(),
        enhanced_channels=top.cpu().numpy(),
        suppressed_channels=bottom.cpu().numpy())


@torch.no_grad()
def tm_features(block: nn.Module,
                x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The features before and after the block's temporal module.

    Args:
        block (nn.Module): A ``TDRLBlock`` with a TM.
        x (Tensor): The block's input, ``(N*T, C, H, W)``.

    Returns:
        tuple[Tensor, Tensor]: TM input (after the PEM when the PEM comes
        first) and TM output, both ``(N*T, C, H, W)``.
    """
    _check_tdrl_block(block, 'temporal')
    before = x
    if block.enhancement is not None and \
            block.enhancement_position == 'before_tm':
        before = block.enhancement(x)
    return before, block.temporal(before)


def tm_feature_maps(block: nn.Module,
                    x: torch.Tensor,
                    channel_ratio: float = 1.0) -> Dict[str, np.ndarray]:
    """TDRL Fig. 4 rows of one model for one video.

    Args:
        block (nn.Module): A ``TDRLBlock`` with a TM.
        x (Tensor): The block's input for one video, ``(T, C, H, W)``.
        channel_ratio (float): Average the first ``ratio * C`` channels
            (0.5: the channels the TD loss regularises by default); 1.0:
            all.

    Returns:
        dict: ``before_tm`` and ``after_tm``, ``(T, H, W)`` in ``[0, 1]``,
        each scaled jointly over its frames.
    """
    if not 0 < channel_ratio <= 1:
        raise ValueError(f'channel_ratio={channel_ratio} must lie in (0, 1].')
    before, after = tm_features(block, x)
    channels = max(1, int(channel_ratio * before.shape[1]))
    return dict(
        before_tm=scale_to_unit(before[:, :channels].mean(dim=1)),
        after_tm=scale_to_unit(after[:, :channels].mean(dim=1)))
