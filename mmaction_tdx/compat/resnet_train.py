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

The fix wraps the method once so that it returns ``self``. Whether it is
needed is read from upstream's source: if ``ResNet.train`` has a ``return``
with a value, the wrapper is not installed.
"""
import ast
import functools

from ._source import function_node, own_statements

_MARK = '_mmaction_tdx_returns_self'


def _upstream_resnet():
    from mmaction.models.backbones.resnet import ResNet
    return ResNet


def returns_a_value(method) -> bool:
    """Whether ``method``'s source has a ``return <value>``.

    Without source (byte-code-only install) the answer is False: the
    defect of mmaction2 1.2.0 is assumed, and the wrapper returns whatever
    a fixed upstream returns anyway.
    """
    node = function_node(method)
    if node is None:
        return False
    return any(
        isinstance(child, ast.Return) and child.value is not None
        for child in own_statements(node))


def is_needed() -> bool:
    train = _upstream_resnet().train
    if getattr(train, _MARK, False):
        return False
    return not returns_a_value(train)


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
