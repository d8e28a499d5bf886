# Copyright (c) mmaction_tdx contributors. All rights reserved.
from .direction_accuracy import DirectionAccuracy

__all__ = ['DirectionAccuracy']
