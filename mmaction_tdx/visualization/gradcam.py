# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Grad-CAM for our segment recognizers (TDN paper, Sec. 4.4, Figs. 4-7).

MMAction2's :class:`mmaction.utils.GradCAM` assumes one input frame per
feature map: for TDN (5 frames per segment, one feature map per segment)
it stretches the ``T`` maps over all ``5T`` frames. It also finds the
target layer only by exact child names (no ``-1`` for "last block"),
records gradients with a deprecated module backward hook, and leaves the
head's ``average_clips`` at ``'score'``. :class:`SegmentGradCAM` keeps its
interface and fixes these: one map per segment, shown on the frame the
segment is seen through (TDN: its centre frame).
"""
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.utils import GradCAM

from .features import get_module, segment_frames


class SegmentGradCAM(GradCAM):
    """Grad-CAM of a 2D recognizer whose segments may span several frames.

    Args:
        model (nn.Module): A ``Recognizer2D`` (e.g. ``SegmentRecognizer2D``
            with ``ResNetTDN`` or ``ResNetTDRL``), with ``model.cfg``.
        target_layer_name (str): The layer whose output is explained,
            dotted or slash-separated, negative indices allowed:
            ``backbone.layer4`` (the last stage, the default of the
            tools), ``backbone/layer4/-1``, ``backbone.layer1`` (TDN
            Fig. 5's "Res2").
        colormap (str): Matplotlib colormap of the heatmap.
    """

    def __init__(self,
                 model: nn.Module,
                 target_layer_name: str,
                 colormap: str = 'jet') -> None:
        self._handle = None
        super().__init__(model, target_layer_name, colormap)

    def _register_hooks(self, layer_name: str) -> None:
        """Keep the layer's output and, through a hook on that tensor, the
        gradient of the score with respect to it."""
        layer = get_module(self.model, layer_name)

        def keep_gradient(grad: torch.Tensor) -> None:
            self.target_gradients = grad.detach()

        def keep_output(module, args, output) -> None:
            self.target_activations = output.detach()
            if output.requires_grad:
                output.register_hook(keep_gradient)

        self._handle = layer.register_forward_hook(keep_output)

    def remove(self) -> None:
        """Detach the hook from the model."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _scores(self, data: dict) -> torch.Tensor:
        """Class scores before softmax, ``(B, num_classes)``, with
        gradients."""
        head = self.model.cls_head
        saved = head.average_clips
        head.average_clips = 'score'
        try:
            with torch.enable_grad():
                results = self.model.test_step(data)
        finally:
            head.average_clips = saved
        return torch.stack([result.pred_score for result in results])

    def _calculate_localization_map(
            self,
            data: dict,
            use_labels: bool = False,
            delta: float = 1e-20,
            target_class: Optional[int] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """One map per segment.

        Args:
            data (dict): ``inputs`` (a list of ``(F, 3, H, W)``) and
                ``data_samples``, as the test pipeline and
                ``pseudo_collate`` give them.
            use_labels (bool): Explain the samples' ``gt_label``.
            delta (float): Guards the normalisation's division.
            target_class (int, optional): Explain this class (else the
                top-scoring one, or the label with ``use_labels``).

        Returns:
            tuple: maps ``(B, S, H, W)`` in ``[0, 1]`` (``S`` maps per
            sample, e.g. ``T`` segments) and scores ``(B, num_classes)``.
        """
        self.target_activations = self.target_gradients = None
        preds = self._scores(data)
        if target_class is not None:
            score = preds[:, target_class]
        elif use_labels:
            labels = torch.stack(
                [sample.gt_label for sample in data['data_samples']])
            score = preds.gather(1, labels.view(-1, 1).to(preds.device))
        else:
            score = preds.max(dim=-1)[0]
        self.model.zero_grad()
        score.sum().backward()
        if self.target_gradients is None:
            raise RuntimeError('The target layer received no gradient; '
                               'name a layer the class score depends on.')

        batch = len(data['inputs'])
        height, width = data['inputs'][0].shape[-2:]
        activations, gradients = self.target_activations, \
            self.target_gradients
        maps_per_sample = activations.shape[0] // batch
        channels = activations.shape[1]
        # Grad-CAM: channel weights = spatially averaged gradients.
        weights = gradients.view(batch, maps_per_sample, channels,
                                 -1).mean(dim=3)
        cams = (weights[..., None, None] * activations.view(
            batch, maps_per_sample, channels,
            *activations.shape[-2:])).sum(dim=2)
        cams = F.interpolate(
            F.relu(cams), size=(height, width), mode='bilinear',
            align_corners=False)
        flat = cams.view(batch, -1)
        low = flat.min(dim=1)[0].view(batch, 1, 1, 1)
        high = flat.max(dim=1)[0].view(batch, 1, 1, 1)
        cams = (cams - low) / (high - low + delta)
        return cams.detach().cpu(), preds.detach().cpu()

    def _alpha_blending(self, localization_map: torch.Tensor,
                        input_imgs, alpha: float) -> torch.Tensor:
        """Heatmaps over the frames the maps belong to.

        Args:
            localization_map (Tensor): ``(B, S, H, W)`` in ``[0, 1]``.
            input_imgs (list[Tensor]): ``B`` inputs ``(F, 3, H, W)``.
            alpha (float): Heatmap weight in ``[0, 1]``.

        Returns:
            Tensor: ``(B, S, H, W, 3)``, RGB in ``[0, 1]``.
        """
        maps_per_sample = localization_map.shape[1]
        frames = np.stack([
            segment_frames(imgs, maps_per_sample) for imgs in input_imgs
        ]).astype(np.float32) / 255.0
        heatmap = self.colormap(localization_map.numpy())[..., :3]
        return torch.from_numpy(alpha * heatmap +
                                (1 - alpha) * frames).float()

    def __call__(self,
                 data: dict,
                 use_labels: bool = False,
                 alpha: float = 0.5,
                 target_class: Optional[int] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Blended heatmaps ``(B, S, H, W, 3)`` and scores
        ``(B, num_classes)`` (before softmax); see
        :meth:`_calculate_localization_map` for the arguments."""
        cams, preds = self._calculate_localization_map(
            data, use_labels=use_labels, target_class=target_class)
        return self._alpha_blending(cams, data['inputs'], alpha), preds

    def maps(self, data: dict, target_class: Optional[int] = None
             ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The raw maps ``(B, S, H, W)`` in ``[0, 1]`` and the scores."""
        return self._calculate_localization_map(
            data, target_class=target_class)
