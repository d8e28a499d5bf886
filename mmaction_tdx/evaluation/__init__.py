# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Evaluation metrics, registered in ``mmaction.registry.METRICS``."""
from .metrics import DirectionAccuracy

__all__ = ['DirectionAccuracy']
