# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Inference on real videos with MMAction2's APIs and our configs."""
from .inference import (
    backbone_sampling,
    check_pipeline_sampling,
    default_device,
    default_video_pipeline,
    init_video_recognizer,
    load_config,
    load_label_map,
    prepare_inference_config,
    recognize_video,
    top_k,
    video_inputs,
)

__all__ = [
    'backbone_sampling', 'check_pipeline_sampling', 'default_device',
    'default_video_pipeline', 'init_video_recognizer', 'load_config',
    'load_label_map', 'prepare_inference_config', 'recognize_video', 'top_k',
    'video_inputs'
]
