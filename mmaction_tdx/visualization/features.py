# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Reach into a recognizer: modules by name, the input a module receives,
the frames each segment is seen through, and maps scaled for display."""
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn as nn


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule ``name`` of ``model``.

    ``name`` is dotted (``backbone.layer2.-1``) or, as in MMAction2's
    ``vis_cam.py``, slash-separated (``backbone/layer4/1/relu``); an integer
    part indexes a sequential container and may be negative (``-1``: its
    last block).
    """
    module = model
    walked = []
    for part in name.replace('/', '.').split('.'):
        if not part:
            continue
        children = dict(module.named_children())
        if part in children:
            module = children[part]
        elif part.lstrip('-').isdigit() and isinstance(
                module, (nn.Sequential, nn.ModuleList)):
            index = int(part)
            if not -len(module) <= index < len(module):
                raise KeyError(f'{".".join(walked) or "model"} has '
                               f'{len(module)} entries; {index} is out of '
                               f'range (in {name!r}).')
            module = module[index]
        else:
            raise KeyError(
                f'{".".join(walked) or "model"} has no submodule {part!r} '
                f'(in {name!r}); it has: {sorted(children)}.')
        walked.append(part)
    return module


def capture_inputs(model: nn.Module, data: dict,
                   names: Sequence[str]) -> Dict[str, torch.Tensor]:
    """Run ``model.test_step(data)`` without gradients and return the
    input tensor each module in ``names`` received (the first positional
    argument, e.g. ``(N*T, C, H, W)`` for a block), detached."""
    captured: Dict[str, torch.Tensor] = {}
    handles = []
    for name in names:

        def keep(module, args, name=name):
            captured[name] = args[0].detach()

        handles.append(get_module(model, name).register_forward_pre_hook(keep))
    try:
        with torch.no_grad():
            model.test_step(data)
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in names if name not in captured]
    if missing:
        raise RuntimeError(f'The forward pass did not run {missing}.')
    return captured


def segment_frames(frames: torch.Tensor, num_maps: int) -> np.ndarray:
    """The frame shown with each of ``num_maps`` per-segment maps.

    Args:
        frames (Tensor): One sample's input, ``(F, 3, H, W)``, RGB, 0-255
            (the test pipeline's output: ``F = V * T * L`` frames, ``L``
            consecutive ones per segment).
        num_maps (int): Maps the model has for the sample (``V * T`` for
            a per-segment feature, ``F`` for a per-frame one).

    Returns:
        ndarray: ``(num_maps, H, W, 3)`` uint8: every frame when
        ``num_maps == F``, else the centre frame of each group of
        ``F // num_maps`` consecutive frames (TDN: the frame its RGB path
        sees).
    """
    count = frames.shape[0]
    if count % num_maps:
        raise ValueError(f'{count} frames cannot be split into {num_maps} '
                         'segments.')
    per_map = count // num_maps
    centres = frames[per_map // 2::per_map]
    return centres.permute(0, 2, 3, 1).clamp(0, 255).to(
        torch.uint8).cpu().numpy()


def scale_to_unit(maps: torch.Tensor, eps: float = 1e-12) -> np.ndarray:
    """Min-max scale ``maps`` (any shape) jointly to ``[0, 1]``, so the
    maps of one row stay comparable with each other; a constant input
    becomes zeros."""
    maps = maps.detach().float().cpu()
    low, high = maps.min(), maps.max()
    return ((maps - low) / (high - low).clamp_min(eps)).numpy()


def channel_groups_rgb(features: torch.Tensor) -> np.ndarray:
    """``(T, C, H, W)`` -> ``(T, H, W, 3)`` in ``[0, 1]``: the channels in
    three consecutive groups, each averaged into one colour (TDRL Fig. 3,
    row 2), every colour scaled jointly over the ``T`` frames."""
    groups = torch.tensor_split(features.float(), 3, dim=1)
    rgb = torch.stack([g.mean(dim=1) for g in groups], dim=-1)
    return np.stack([scale_to_unit(rgb[..., i]) for i in range(3)], axis=-1)


def split_videos(features: torch.Tensor, num_segments: int) -> List[
        torch.Tensor]:
    """``(N*T, ...)`` -> ``N`` tensors ``(T, ...)``."""
    if features.shape[0] % num_segments:
        raise ValueError(f'{features.shape[0]} segment features are not a '
                         f'multiple of num_segments={num_segments}.')
    return list(features.split(num_segments))
