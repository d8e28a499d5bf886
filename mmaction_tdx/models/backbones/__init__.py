# Copyright (c) mmaction_tdx contributors. All rights reserved.
from .resnet_tdn import ResNetTDN  # noqa: F401,E402
from .resnet_tdrl import ResNetTDRL, TDRLBlock  # noqa: F401
from .resnet_tsm_td import ResNetTSMTD  # noqa: F401
from .temporal_resnet import TemporalResNet  # noqa: F401
