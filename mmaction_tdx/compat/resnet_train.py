# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""``mmaction.models.ResNet.train()`` returns ``None`` in mmaction2 1.2.0.

Upstream defect (mmaction2 1.2.0, ``mmaction/models/backbones/resnet.py``):
``ResNet.train`` overrides ``nn.Module.train`` to freeze stages and BN but
has no ``return self``. Every subclass (ResNetTSM, TANet, ...) inherits it,
so ``backbone.eval().cuda()`` or
``backbone.train(False).requires_grad_(False)`` raise
``AttributeError: 'NoneType' object has no attribute ...``.
``nn.Module.eval`` returns ``self.train(False)``, so ``.eval()`` chains
break the same way. A recognizer's ``.eval()`` is ``nn.Module``'s and
returns the recognizer, whatever its backbone's ``train`` returns.

The fix leaves MMAction2's class alone (importing ``mmaction_tdx`` changes
no upstream class): :class:`TrainReturnsSelfMixin` is a base of our
ResNet-based backbones (``TemporalResNet``, hence ``ResNetTDN``,
``ResNetTDRL`` and ``ResNetTSMTD``). Upstream's ``ResNet`` and its other
subclasses keep returning ``None`` on this stack; don't chain on them.

:func:`is_needed` says whether the installed ``mmaction2`` is at most
:data:`LAST_DEFECTIVE` (1.2.0, the latest release at the time of writing).
The mixin does not ask it: it returns upstream's result whenever that is
not None, so a fixed upstream is unaffected.
"""
from . import _versions

#: The last mmaction2 release whose ``ResNet.train`` returns None.
LAST_DEFECTIVE = '1.2.0'


def is_needed() -> bool:
    """Whether the installed ``mmaction2``'s ``ResNet.train`` returns None
    (decided from its version; no source is read, no model built)."""
    return _versions.at_most('mmaction2', LAST_DEFECTIVE)


class TrainReturnsSelfMixin:
    """``train()`` (hence ``eval()``) of a ``ResNet`` subclass that returns
    the module, as ``nn.Module.train`` does.

    Upstream's ``train`` still runs first, unchanged: it sets the mode and
    then re-freezes ``frozen_stages`` and, with ``norm_eval``, puts the BN
    layers back in eval mode. Put the mixin first in the bases.

    Example::

        @MODELS.register_module()
        class MyResNet(TrainReturnsSelfMixin, ResNet):
            ...

        backbone = MyResNet(depth=18).eval().requires_grad_(False)
    """

    def train(self, mode: bool = True):
        result = super().train(mode)
        return self if result is None else result
