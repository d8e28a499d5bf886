# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Runner extensions (hooks, parameter schedulers) of mmaction_tdx."""
from .hooks import (
    BrokenSampleReportHook,
    CheckpointMismatchError,
    SamplingCheckHook,
    SamplingConfigError,
    ScheduleCheckHook,
    ScheduleMismatchError,
    StrictLoadHook,
)
from .schedulers import WarmupCosineLR, WarmupCosineParamScheduler

__all__ = [
    'BrokenSampleReportHook', 'CheckpointMismatchError', 'SamplingCheckHook',
    'SamplingConfigError', 'ScheduleCheckHook', 'ScheduleMismatchError',
    'StrictLoadHook', 'WarmupCosineLR', 'WarmupCosineParamScheduler'
]
