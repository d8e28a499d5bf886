# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Hooks, registered in ``mmaction.registry.HOOKS``."""
from .broken_sample_report_hook import BrokenSampleReportHook

__all__ = ['BrokenSampleReportHook']
