# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The declared path from a backbone's auxiliary training outputs (e.g. the
TD features of TDRL's Temporal Diversity loss) to a head's loss.

* **Backbone.** Inherits :class:`AuxOutputsMixin`: a class attribute
  ``supported_aux_outputs`` (names, e.g. ``('td_features',)``),
  :meth:`~AuxOutputsMixin.request_aux_outputs` (a build-time check) and
  :meth:`~AuxOutputsMixin.forward_with_aux`, which returns
  ``(features, {name: value})`` for the requested names. ``forward``
  always returns the plain features, in every mode: export, tracing,
  Grad-CAM and ``torch.compile`` see a plain tensor model, and inference
  never computes or keeps the extra features.
* **Head.** Declares ``backbone_aux_outputs`` (names it needs) and takes
  them as keyword arguments of ``loss``.
* **Recognizer.** ``SegmentRecognizer2D`` requests the head's names from
  the backbone when it is built (refusing a backbone that cannot provide
  them) and, for the training loss only, calls ``forward_with_aux``
  instead of ``forward``; the values join the keyword arguments of
  ``cls_head.loss``. No hook, no state kept between calls.
"""
from typing import Any, Dict, Sequence, Tuple

TD_FEATURES = 'td_features'


class AuxOutputsMixin:
    """Backbone side of the contract (mix into an ``nn.Module``).

    Subclasses set ``supported_aux_outputs``, implement
    :meth:`forward_with_aux` and may override :meth:`check_aux_request` to
    reject requests they cannot serve with their settings (e.g. no TDRL-B
    block), naming the fix.
    """

    supported_aux_outputs: Tuple[str, ...] = ()
    aux_outputs: Tuple[str, ...] = ()

    def check_aux_request(self, names: Tuple[str, ...]) -> None:
        """Raise if the backbone, as built, cannot provide ``names``."""

    def request_aux_outputs(self, names: Sequence[str]) -> None:
        """Check that ``names`` can be provided and let
        :meth:`forward_with_aux` return them.

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

    def forward_with_aux(self, x: Any) -> Tuple[Any, Dict[str, Any]]:
        """``(forward(x), {name: value})`` for the requested names."""
        raise NotImplementedError
