# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Check, before the first iteration, that the pipelines sample what the
model reads.

A segment backbone reads ``num_segments`` segments of ``frames_per_segment``
consecutive frames (TDN: 5, TDRL and TSM: 1). The recognizer checks the
frame count of every sample at the first forward, but some wrong samplings
have a valid count: for TDN with ``num_segments=4``,
``SampleFrames(clip_len=1, num_clips=20)`` yields 20 frames, as
``clip_len=5, num_clips=4`` does, and trains on the wrong frames without an
error; several test views with a plain ``TSNHead`` average the features of
all views. :class:`SamplingCheckHook` applies the rule of
:mod:`mmaction_tdx.datasets.sampling_contract` (training: exactly one view;
testing: a whole number of views, scored per view) to the train/val/test
pipelines of the config and raises :class:`SamplingConfigError` naming the
pipeline, the setting and the fix.
"""
from typing import List, Optional

from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmaction_tdx.datasets.sampling_contract import (
    BackboneSampling,
    SamplingConfigError,
    backbone_sampling,
    bind_view_heads,
    check_sampling,
)
from mmaction_tdx.datasets.sampling_contract import (
    sampling_problems as _sampling_problems,
)


def sampling_problems(cfg,
                      num_segments: Optional[int],
                      frames_per_segment: int,
                      backbone: str,
                      head=None) -> List[str]:
    """What is wrong with the sampling in ``cfg`` for a backbone given by
    its numbers (see
    :func:`mmaction_tdx.datasets.sampling_contract.sampling_problems`)."""
    return _sampling_problems(
        cfg, BackboneSampling(backbone, num_segments, frames_per_segment),
        head)


@HOOKS.register_module()
class SamplingCheckHook(Hook):
    """Raise before the first train/val/test iteration if a pipeline does
    not sample what the model reads.

    Backbones with a segment axis (``num_segments``: ours, MMAction2's
    ``ResNetTSM``) or ``frames_per_segment`` are checked; others (a plain
    2D ``ResNet``) are left alone. A per-view head without
    ``segments_per_view`` first gets the backbone's ``num_segments``.
    Enabled in ``configs/_base_/default_runtime.py``::

        default_hooks = dict(sampling_check=dict(type='SamplingCheckHook'))
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        backbone = getattr(model, 'backbone', None)
        if backbone is None or not (hasattr(backbone, 'num_segments') or
                                    hasattr(backbone, 'frames_per_segment')):
            return
        bind_view_heads(model)
        check_sampling(runner.cfg, backbone_sampling(model),
                       getattr(model, 'cls_head', None))


__all__ = ['SamplingCheckHook', 'SamplingConfigError', 'sampling_problems']
