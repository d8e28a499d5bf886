# Copyright (c) mmaction_tdx contributors. All rights reserved.
from .temporal_diversity_loss import TemporalDiversityLoss  # noqa: F401
