# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Hooks, registered in ``mmaction.registry.HOOKS``."""
from .broken_sample_report_hook import BrokenSampleReportHook
from .strict_load_hook import CheckpointMismatchError, StrictLoadHook

__all__ = ['BrokenSampleReportHook', 'CheckpointMismatchError',
           'StrictLoadHook']
