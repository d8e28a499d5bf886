# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""A linear warm-up then a cosine decay to the end of training, as one
scheduler whose length follows ``train_cfg.max_epochs``.

MMEngine writes this as ``LinearLR`` (``end=w``) then
``CosineAnnealingLR`` (``begin=w``, ``end=max_epochs``,
``T_max=max_epochs - w``), numbers that ``--cfg-options
train_cfg.max_epochs=N`` leaves behind; leaving the cosine's ``end`` unset
(MMEngine then ends it at ``max_epochs``) fails to build for
``max_epochs <= w`` (``end`` must exceed ``begin``), e.g. a 1-epoch smoke
run. Here one scheduler spans ``[begin, end)`` with ``end`` defaulting to
the training length, so any ``max_epochs`` works. With :math:`t` the step
since ``begin``, :math:`W` the warm-up steps, :math:`E = end - begin`,
:math:`s` the start factor and :math:`v_0` the base value:

.. math::

    v(t) = \\begin{cases}
      v_0 \\left(s + (1 - s)\\frac{t}{W - 1}\\right) & t < W \\\\
      \\eta + \\frac{v_0 - \\eta}{2}
        \\left(1 + \\cos\\frac{\\pi (t - W)}{E - W}\\right) & t \\ge W
    \\end{cases}

the values of MMEngine's ``LinearLR`` (``total_iters = W - 1``; constant
:math:`s v_0` for :math:`W = 1`) followed by ``CosineAnnealingLR``
(``T_max = E - W``). Closed form, not chainable: use it as the only
scheduler of its parameter.
"""
import math

from mmaction.registry import PARAM_SCHEDULERS
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler


@PARAM_SCHEDULERS.register_module()
class WarmupCosineParamScheduler(_ParamScheduler):
    """Linear warm-up over ``warmup`` steps, then a cosine decay to
    ``eta_min`` at ``end`` (see the module docstring).

    Args:
        optimizer (Optimizer or OptimWrapper): the wrapped optimizer.
        param_name (str): the parameter to schedule, e.g. ``'lr'``.
        warmup (int): warm-up length, in the scheduler's unit (epochs with
            ``by_epoch=True``). Defaults to 1.
        start_factor (float): the warm-up's first value as a fraction of
            the base value. Defaults to 0.1.
        eta_min (float): the value the cosine ends at. Defaults to 0.
        begin (int): first step. Defaults to 0.
        end (int): the cosine's end; MMEngine's Runner sets an unset
            ``end`` to ``max_epochs`` (``max_iters`` with
            ``by_epoch=False``). Defaults to INF.
        last_step (int): as MMEngine's schedulers. Defaults to -1.
        by_epoch (bool): as MMEngine's schedulers. Defaults to True.
        verbose (bool): as MMEngine's schedulers. Defaults to False.
    """

    def __init__(self,
                 optimizer,
                 param_name: str,
                 warmup: int = 1,
                 start_factor: float = 0.1,
                 eta_min: float = 0.0,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False):
        if warmup < 1 or not 0 < start_factor <= 1:
            raise ValueError(
                f'{type(self).__name__}: warmup={warmup}, start_factor='
                f'{start_factor}; use warmup >= 1 (steps of the warm-up) '
                'and 0 < start_factor <= 1.')
        self.warmup = int(warmup)
        self.start_factor = start_factor
        self.eta_min = eta_min
        super().__init__(
            optimizer,
            param_name=param_name,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls,
                              *args,
                              warmup=1,
                              begin=0,
                              end=INF,
                              by_epoch=True,
                              epoch_length=None,
                              **kwargs):
        """An iteration-based instance from an epoch-based config
        (``convert_to_iter_based=True``)."""
        assert by_epoch, 'Only epoch-based kwargs whose `by_epoch=True` ' \
            'can be converted to iter-based.'
        assert epoch_length is not None and epoch_length > 0, \
            f'`epoch_length` must be a positive integer, got {epoch_length}.'
        if end != INF:
            end = int(end * epoch_length)
        return cls(
            *args,
            warmup=int(warmup * epoch_length),
            begin=int(begin * epoch_length),
            end=end,
            by_epoch=False,
            **kwargs)

    def _factor(self, t: int) -> float:
        if self.warmup == 1:
            return self.start_factor
        return self.start_factor + (1 - self.start_factor) * min(
            t, self.warmup - 1) / (self.warmup - 1)

    def _get_value(self) -> list:
        t = self.last_step
        span = self.end - self.begin - self.warmup
        if t < self.warmup or span <= 0:
            return [base * self._factor(t) for base in self.base_values]
        return [
            self.eta_min + (base - self.eta_min) *
            (1 + math.cos(math.pi * (t - self.warmup) / span)) / 2
            for base in self.base_values
        ]


@PARAM_SCHEDULERS.register_module()
class WarmupCosineLR(LRSchedulerMixin, WarmupCosineParamScheduler):
    """:class:`WarmupCosineParamScheduler` of the learning rate."""
