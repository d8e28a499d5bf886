# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Checks of MMAction2 ``ResNet``'s stage arguments, with messages.

MMAction2's ``ResNet`` guards ``num_stages`` and ``out_indices`` with bare
``assert`` statements and does not check ``frozen_stages`` at all (a value
above ``num_stages`` fails later, in ``train()``, with an
``AttributeError`` about ``layer5``). Our backbones call
:func:`check_resnet_stage_args` before building the ResNet so that a wrong
stage index fails at build time and says which setting to change.
"""
from typing import Sequence


def check_resnet_stage_args(backbone: str,
                            num_stages: int = 4,
                            out_indices: Sequence[int] = (3, ),
                            frozen_stages: int = -1) -> None:
    """Validate ResNet stage indices (0-based: 0 = ``layer1``).

    Args:
        backbone (str): Class name, for the messages.
        num_stages (int): Residual stages built, 1-4.
        out_indices (Sequence[int]): Stages whose output is returned,
            each in ``[0, num_stages - 1]``.
        frozen_stages (int): Stages to freeze, ``-1`` (none) to
            ``num_stages``.

    Raises:
        ValueError: naming the argument, the valid range and the layers.
    """
    def _is_int(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not _is_int(num_stages) or not 1 <= num_stages <= 4:
        raise ValueError(
            f'{backbone}: `num_stages` must be 1-4 (a ResNet has 4 residual '
            f'stages, layer1-layer4), got {num_stages!r}.')
    indices = tuple(out_indices) if isinstance(
        out_indices, (list, tuple)) else (out_indices, )
    wrong = [i for i in indices if not _is_int(i) or not 0 <= i < num_stages]
    if not indices or wrong:
        raise ValueError(
            f'{backbone}: `out_indices` {tuple(indices)} must be stage '
            f'indices in [0, {num_stages - 1}], counted from 0 (0 = layer1, '
            f'{num_stages - 1} = layer{num_stages}); e.g. (3,) for the last '
            'stage, as the heads expect.')
    if not _is_int(frozen_stages) or not -1 <= frozen_stages <= num_stages:
        raise ValueError(
            f'{backbone}: `frozen_stages` must be -1 (nothing frozen) to '
            f'{num_stages} (the stem and layer1-layer{num_stages}), got '
            f'{frozen_stages!r}; k freezes the stem and layer1-layerk.')
