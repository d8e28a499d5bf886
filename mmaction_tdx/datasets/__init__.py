# Copyright (c) mmaction_tdx contributors. All rights reserved.
from .annotation_checks import AnnotationError  # noqa: F401
from .broken_samples import BrokenDataError, BrokenSampleRecord  # noqa: F401
from .robust_video_dataset import RobustRawframeDataset, RobustVideoDataset  # noqa: F401
from .sth_flip_label_maps import (STHV1_FLIP_LABEL_MAP,  # noqa: F401,E402
                                 STHV2_FLIP_LABEL_MAP, flip_label_map)
