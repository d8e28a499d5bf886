# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Figures: TDRL's PEM channels (Fig. 3) and TM features with/without the
TD loss (Fig. 4), TDN's Grad-CAM comparisons (Figs. 4-7), training curves.

Matplotlib is imported only when a figure is drawn.
"""
from .features import (
    capture_inputs,
    channel_groups_rgb,
    get_module,
    scale_to_unit,
    segment_frames,
    split_videos,
)
from .gradcam import SegmentGradCAM
from .grid import save_image_grid
from .tdrl_features import (
    pem_channel_maps,
    pem_input,
    tm_feature_maps,
    tm_features,
)
from .training_curves import (
    TrainingLog,
    load_log,
    plot_curves,
    train_time_summary,
)

__all__ = [
    'SegmentGradCAM', 'TrainingLog', 'capture_inputs', 'channel_groups_rgb',
    'get_module', 'load_log', 'pem_channel_maps', 'pem_input',
    'plot_curves', 'save_image_grid', 'scale_to_unit', 'segment_frames',
    'split_videos', 'tm_feature_maps', 'tm_features', 'train_time_summary'
]
