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
checkpoint, upstream's method runs unchanged. Where upstream already handles
None, the wrapper is not installed.
"""
import functools

_MARK = '_mmaction_tdx_scratch_init'


def _upstream_resnet_tsm():
    from mmaction.models.backbones.resnet_tsm import ResNetTSM
    return ResNetTSM


def is_needed() -> bool:
    resnet_tsm = _upstream_resnet_tsm()
    if getattr(resnet_tsm.init_weights, _MARK, False):
        return False
    probe = resnet_tsm(depth=18, pretrained=None, num_segments=2)
    try:
        probe.init_weights()
    except TypeError:
        return True
    return False


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
