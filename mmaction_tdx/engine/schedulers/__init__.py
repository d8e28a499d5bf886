# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Parameter schedulers, registered in ``mmaction.registry``'s
``PARAM_SCHEDULERS``."""
from .warmup_cosine import WarmupCosineLR, WarmupCosineParamScheduler

__all__ = ['WarmupCosineLR', 'WarmupCosineParamScheduler']
