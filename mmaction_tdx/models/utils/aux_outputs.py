# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The declared channel through which a backbone hands auxiliary training
outputs (e.g. the TD features of TDRL's Temporal Diversity loss) to a head.

Shared by ``ResNetTDRL`` and ``ResNetTDN`` (TD loss on TDN); written first
so that both backbones implement one contract:

* **Backbone.** Inherits :class:`AuxOutputsMixin`: a class attribute
  ``supported_aux_outputs`` (names, e.g. ``('td_features',)``) and
  :meth:`AuxOutputsMixin.request_aux_outputs`. While
  :func:`returns_aux_outputs` is true (training mode *and* something was
  requested), ``forward`` returns ``(features, {name: value})``; otherwise
  the plain features, so eval, export, tracing and inference never see the
  pair and never compute the extra features.
* **Head.** Declares ``backbone_aux_outputs`` (names it needs) and takes
  them as keyword arguments of ``loss``.
* **Recognizer.** ``SegmentRecognizer2D`` requests the head's names from
  the backbone when it is built, and takes the dict off the backbone's
  output with a forward hook (:func:`split_aux_outputs`) under exactly the
  condition of :func:`returns_aux_outputs`, so upstream's
  ``Recognizer2D.extract_feat`` (neck, fully-convolutional test, head) only
  ever sees the features.
"""
from typing import Any, Dict, Sequence, Tuple

import torch.nn as nn

TD_FEATURES = 'td_features'


def returns_aux_outputs(backbone: nn.Module) -> bool:
    """Whether ``backbone.forward`` returns ``(features, aux_dict)`` now.

    The one rule both sides follow: training mode and at least one name
    requested through ``request_aux_outputs``.
    """
    return backbone.training and bool(getattr(backbone, 'aux_outputs', ()))


def split_aux_outputs(backbone: nn.Module,
                      output: Any) -> Tuple[Any, Dict[str, Any]]:
    """``(features, aux_dict)`` of a backbone output.

    Decided by :func:`returns_aux_outputs`, never by the output's shape: a
    backbone whose plain features are a tuple (several ``out_indices``)
    stays untouched.
    """
    if not returns_aux_outputs(backbone):
        return output, {}
    feats, aux = output
    return feats, dict(aux)


class AuxOutputsMixin:
    """Backbone side of the contract (mix into an ``nn.Module``).

    Subclasses set ``supported_aux_outputs`` and may override
    :meth:`check_aux_request` to reject requests they cannot serve with
    their settings (e.g. no TDRL-B block), naming the fix.
    """

    supported_aux_outputs: Tuple[str, ...] = ()
    aux_outputs: Tuple[str, ...] = ()

    def check_aux_request(self, names: Tuple[str, ...]) -> None:
        """Raise if the backbone, as built, cannot provide ``names``."""

    def request_aux_outputs(self, names: Sequence[str]) -> None:
        """Return ``names`` as ``(features, {name: value})`` in training.

        Called once by ``SegmentRecognizer2D`` for a head that declares
        ``backbone_aux_outputs``; an empty ``names`` switches them off.
        """
        names = tuple(names)
        unknown = sorted(set(names) - set(self.supported_aux_outputs))
        if unknown:
            raise ValueError(
                f'{type(self).__name__} cannot provide {unknown}; it '
                f'provides {self.supported_aux_outputs}. Remove the loss '
                'that needs them from `cls_head`, or use a backbone that '
                'provides them.')
        self.check_aux_request(names)
        self.aux_outputs = names
