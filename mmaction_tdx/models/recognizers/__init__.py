# Copyright (c) mmaction_tdx contributors. All rights reserved.
from .segment_recognizer2d import SegmentRecognizer2D

__all__ = ['SegmentRecognizer2D']
