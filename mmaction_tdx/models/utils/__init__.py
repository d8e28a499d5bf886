# Copyright (c) mmaction_tdx contributors. All rights reserved.
from .tdn_checkpoint import (
    convert_release_checkpoint,
    convert_release_state_dict,
    load_release_checkpoint,
    release_key,
    torchvision_resnet_key,
)

__all__ = [
    'convert_release_checkpoint', 'convert_release_state_dict',
    'load_release_checkpoint', 'release_key', 'torchvision_resnet_key'
]
