# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Runner extensions (hooks) of mmaction_tdx."""
from .hooks import (
    BrokenSampleReportHook,
    CheckpointMismatchError,
    SamplingCheckHook,
    SamplingConfigError,
    StrictLoadHook,
)

__all__ = [
    'BrokenSampleReportHook', 'CheckpointMismatchError', 'SamplingCheckHook',
    'SamplingConfigError', 'StrictLoadHook'
]
