# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""``ResNetTSM(pretrained=None)`` fails in ``init_weights`` (mmaction2 1.2.0).

Upstream defect (mmaction2 1.2.0, ``mmaction/models/backbones/
resnet_tsm.py``): ``pretrained2d`` defaults to True, and ``init_weights``
then always calls ``load_original_weights``, which passes
``self.pretrained`` to ``_load_checkpoint`` even when it is None, so a TSM
trained from scratch (e.g. ``mmaction::_base_/models/tsm_r50.py`` with
``pretrained=None``) fails with ``TypeError: expected string or bytes-like
object, got 'NoneType'``. ``ResNet`` itself treats ``pretrained=None`` as
"initialise from scratch".

The fix leaves MMAction2's class alone (importing ``mmaction_tdx`` changes
no upstream class): it applies where our code uses a TSM,

* our TSM configs set ``pretrained2d=False``, upstream's own switch for a
  TSM without 2D ImageNet weights (``configs/quickstart/tsm*.py``); so do
  yours;
* :class:`ScratchInitTSMMixin`, for a backbone built on ``ResNetTSM`` (put
  it first in the bases): with ``pretrained=None`` ``init_weights`` does
  what ``ResNet.init_weights`` does for None (random initialisation); with
  a checkpoint, upstream's method runs unchanged.

It is needed while the installed ``mmaction2`` is at most
:data:`LAST_DEFECTIVE` (1.2.0, the latest release at the time of writing);
beyond it the mixin defers to upstream's ``init_weights``.
"""
from . import _versions

#: The last mmaction2 release whose ``ResNetTSM.init_weights`` fails on
#: ``pretrained=None``.
LAST_DEFECTIVE = '1.2.0'


def is_needed() -> bool:
    return _versions.at_most('mmaction2', LAST_DEFECTIVE)


def apply() -> bool:
    """Patch nothing (see the module docstring): the fix lives in
    :class:`ScratchInitTSMMixin` and our configs.

    Returns:
        bool: whether the mixin replaces upstream's ``init_weights`` for
        ``pretrained=None`` on this stack.
    """
    return is_needed()


class ScratchInitTSMMixin:
    """``init_weights`` of a ``ResNetTSM`` subclass that accepts
    ``pretrained=None`` (from scratch), as ``ResNet`` does.

    Example::

        @MODELS.register_module()
        class MyTSM(ScratchInitTSMMixin, ResNetTSM):
            ...
    """

    def init_weights(self):
        if self.pretrained2d and self.pretrained is None and is_needed():
            from mmaction.models.backbones.resnet import ResNet

            # ResNet.init_weights: None means random initialisation.
            return ResNet.init_weights(self)
        return super().init_weights()
