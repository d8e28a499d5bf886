# Copyright (c) mmaction_tdx contributors. All rights reserved.
from .annotation_checks import AnnotationError
from .broken_samples import (
    BrokenDataError,
    BrokenPipelineError,
    BrokenSampleRecord,
)
from .robust_video_dataset import RobustRawframeDataset, RobustVideoDataset
from .sth_flip_label_maps import (
                                  STHV1_FLIP_LABEL_MAP,
                                  STHV2_FLIP_LABEL_MAP,
                                  flip_label_map,
)
from .transforms import *  # noqa: F401,F403

__all__ = [
    'AnnotationError', 'BrokenDataError', 'BrokenPipelineError',
    'BrokenSampleRecord',
    'RobustRawframeDataset', 'RobustVideoDataset', 'STHV1_FLIP_LABEL_MAP',
    'STHV2_FLIP_LABEL_MAP', 'flip_label_map'
]
