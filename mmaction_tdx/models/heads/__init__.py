# Copyright (c) mmaction_tdx contributors. All rights reserved.
from .tsn_td_head import TSNTDHead  # noqa: F401
from .view_consensus import ViewConsensusTSNHead  # noqa: F401
