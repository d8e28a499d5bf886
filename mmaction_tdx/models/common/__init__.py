# Copyright (c) mmaction_tdx contributors. All rights reserved.
from .long_term_tdm import LongTermTDM  # noqa: F401,E402
from .progressive_enhancement import ProgressiveEnhancementModule  # noqa: F401
from .short_term_tdm import ShortTermTDM  # noqa: F401,E402
from .temporal_modules import (  # noqa: F401
    ChannelwiseTemporalConv,
    MotionEnhancementModule,
    TemporalShift,
)
