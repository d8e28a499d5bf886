# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""``mmaction.models.ResNet.train()`` returns ``None`` in mmaction2 1.2.0.

Upstream defect (mmaction2 1.2.0, ``mmaction/models/backbones/resnet.py``):
``ResNet.train`` overrides ``nn.Module.train`` to freeze stages and BN but
has no ``return self``. Every subclass (ResNetTSM, TANet, our ResNetTDN and
ResNetTDRL, ...) inherits it, so ``backbone.eval().cuda()`` or
``model.backbone.train(False).requires_grad_(False)`` raise
``AttributeError: 'NoneType' object has no attribute ...``.
``nn.Module.eval`` also returns ``self.train(False)``, so ``.eval()`` chains
break the same way.

The fix wraps the method once so that it returns ``self`` (and returns
whatever upstream returns when that is not None, so a fixed upstream is
unaffected). It is needed while the installed ``mmaction2`` is at most
:data:`LAST_DEFECTIVE` (1.2.0, the latest release at the time of
writing).
"""
import functools

from . import _versions

_MARK = '_mmaction_tdx_returns_self'
#: The last mmaction2 release whose ``ResNet.train`` returns None.
LAST_DEFECTIVE = '1.2.0'


def _upstream_resnet():
    from mmaction.models.backbones.resnet import ResNet
    return ResNet


def is_needed() -> bool:
    if getattr(_upstream_resnet().train, _MARK, False):
        return False
    return _versions.at_most('mmaction2', LAST_DEFECTIVE)


def apply() -> bool:
    """Make ``ResNet.train`` return ``self``.

    Returns:
        bool: True if the wrapper is active after the call.
    """
    resnet_cls = _upstream_resnet()
    if getattr(resnet_cls.train, _MARK, False):
        return True
    if not is_needed():
        return False
    upstream_train = resnet_cls.train

    @functools.wraps(upstream_train)
    def train(self, mode: bool = True):
        result = upstream_train(self, mode)
        return self if result is None else result

    setattr(train, _MARK, True)
    resnet_cls.train = train
    return True
