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

The fix: with ``pretrained=None``, ``ResNetTSM.init_weights`` does what
``ResNet.init_weights`` does for None (the random initialisation); with a
checkpoint, upstream's method runs unchanged. Whether it is needed is read
from upstream's source: the defect is an ``if self.pretrained2d:`` branch of
``init_weights`` that calls ``self.load_original_weights`` without looking
at ``self.pretrained``; where upstream's method differs (e.g. it tests
``self.pretrained`` first), the wrapper is not installed.
"""
import ast
import functools

from ._source import function_node, is_self_attribute, own_statements

_MARK = '_mmaction_tdx_scratch_init'


def _upstream_resnet_tsm():
    from mmaction.models.backbones.resnet_tsm import ResNetTSM
    return ResNetTSM


def loads_without_checking_pretrained(init_weights) -> bool:
    """Whether ``init_weights`` has upstream 1.2.0's defective branch.

    That is an ``if self.pretrained2d:`` whose body calls
    ``self.load_original_weights(...)`` and never reads ``self.pretrained``.
    Without source (byte-code-only install) the 1.2.0 defect is assumed;
    the wrapper runs upstream's method whenever a checkpoint is given.
    """
    node = function_node(init_weights)
    if node is None:
        return True
    for branch in own_statements(node):
        if not (isinstance(branch, ast.If)
                and is_self_attribute(branch.test, 'pretrained2d')):
            continue
        body = [n for stmt in branch.body for n in ast.walk(stmt)]
        loads = any(
            isinstance(n, ast.Call)
            and is_self_attribute(n.func, 'load_original_weights')
            for n in body)
        checks = any(is_self_attribute(n, 'pretrained') for n in body)
        if loads and not checks:
            return True
    return False


def is_needed() -> bool:
    init_weights = _upstream_resnet_tsm().init_weights
    if getattr(init_weights, _MARK, False):
        return False
    return loads_without_checking_pretrained(init_weights)


def apply() -> bool:
    """Let ``ResNetTSM`` initialise from scratch when ``pretrained=None``.

    Returns:
        bool: True if the wrapper is active after the call.
    """
    resnet_tsm = _upstream_resnet_tsm()
    if getattr(resnet_tsm.init_weights, _MARK, False):
        return True
    if not is_needed():
        return False
    upstream_init = resnet_tsm.init_weights

    @functools.wraps(upstream_init)
    def init_weights(self):
        if self.pretrained2d and self.pretrained is None:
            # ResNet.init_weights: None means random initialisation.
            return super(resnet_tsm, self).init_weights()
        return upstream_init(self)

    setattr(init_weights, _MARK, True)
    resnet_tsm.init_weights = init_weights
    return True
