# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Hooks, registered in ``mmaction.registry.HOOKS``."""
from .broken_sample_report_hook import BrokenSampleReportHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .sampling_check_hook import SamplingCheckHook, SamplingConfigError
from .schedule_check_hook import ScheduleCheckHook, ScheduleMismatchError
from .strict_load_hook import CheckpointMismatchError, StrictLoadHook

__all__ = [
    'BrokenSampleReportHook', 'CheckpointMismatchError', 'SafeCheckpointHook',
    'SamplingCheckHook', 'SamplingConfigError', 'ScheduleCheckHook',
    'ScheduleMismatchError', 'StrictLoadHook'
]
