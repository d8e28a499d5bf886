# Copyright (c) mmaction_tdx contributors. All rights reserved.
from .segment_sampling import SegmentSampleFrames

__all__ = ['SegmentSampleFrames']
