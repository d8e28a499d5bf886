# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Inference on real videos with MMAction2's APIs and our configs."""
from .checkpoint import CheckpointMismatchError, load_checkpoint_strict
from .frame_sources import (
    CaptureSource,
    FrameSourceError,
    VideoFileSource,
    open_source,
)
from .inference import (
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
from .video_recognizer import (
    VideoRecognizer,
    WindowPrediction,
    plan_windows,
    switch_to_deploy,
)

__all__ = [
    'CaptureSource', 'CheckpointMismatchError', 'FrameSourceError',
    'VideoFileSource', 'VideoRecognizer', 'WindowPrediction',
    'check_pipeline_sampling', 'default_device', 'default_video_pipeline',
    'init_video_recognizer', 'load_checkpoint_strict', 'load_config',
    'load_label_map', 'open_source', 'plan_windows',
    'prepare_inference_config', 'recognize_video', 'switch_to_deploy',
    'top_k', 'video_inputs'
]
