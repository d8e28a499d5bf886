# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Load a checkpoint for inference, refusing one of another model.

MMAction2's ``init_recognizer`` loads with ``strict=False``: a TDN
checkpoint in a TDRL model, or a 174-class head in a 400-class model, only
logs size-mismatch warnings and the model answers half-initialised.
:func:`load_checkpoint_strict` compares the checkpoint with the model
first, with the comparison and listing training uses
(:mod:`mmaction_tdx.engine.hooks.strict_load_hook`), and raises
:class:`CheckpointMismatchError` unless told ``strict=False``.
"""
import warnings
from typing import Optional

import torch.nn as nn

from mmaction_tdx.engine.hooks.strict_load_hook import (
    CheckpointMismatchError,
    checkpoint_state_dict,
    compare_state_dicts,
)


def load_checkpoint_strict(model: nn.Module,
                           filename: str,
                           map_location: str = 'cpu',
                           strict: bool = True,
                           config: Optional[str] = None) -> dict:
    """Load ``filename`` into ``model`` (MMEngine's loaders, ``module.``
    stripped), refusing missing, unexpected or shape-mismatched keys.

    Args:
        model (nn.Module): The model, built.
        filename (str): Checkpoint file or URL.
        map_location (str): Where the tensors are loaded. Defaults to
            ``'cpu'``.
        strict (bool): Refuse any difference (default). False loads the
            keys that fit, warns with the same listing, and leaves the rest
            as initialised.
        config (str, optional): The config's name, for the message.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        CheckpointMismatchError: With ``strict``, if the checkpoint does
            not fit the model; the message lists the keys as training does
            and names the fix (the right checkpoint or config, or
            ``strict=False`` / ``--no-strict``).
    """
    from mmengine.runner.checkpoint import (
        _load_checkpoint,
        _load_checkpoint_to_model,
    )
    checkpoint = _load_checkpoint(
        filename, map_location=map_location, logger='silent')
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'{filename} holds a {type(checkpoint).__name__}, not a state '
            'dict or an MMEngine checkpoint.')
    mismatch = compare_state_dicts(model.state_dict(),
                                   checkpoint_state_dict(checkpoint))
    if mismatch:
        model_name = f'the model of {config}' if config else 'the model'
        head = (f'The checkpoint {filename} does not fit {model_name} '
                '(another depth, backbone, module design or number of '
                'classes?):\n' + mismatch.describe())
        if strict:
            raise CheckpointMismatchError(
                f'{head}\nPass the checkpoint trained with this config, or '
                'the config the checkpoint was trained with. To load only '
                'the keys that fit (the rest keeps its initialisation), '
                'pass strict=False (command line: --no-strict).')
        warnings.warn(f'{head}\nstrict=False: loading the keys that fit; '
                      'the rest keeps its initialisation.')
    # Already listed above; MMEngine would repeat it key by key.
    _load_checkpoint_to_model(
        model, checkpoint, strict=False, logger='silent')
    return checkpoint


__all__ = ['CheckpointMismatchError', 'load_checkpoint_strict']
