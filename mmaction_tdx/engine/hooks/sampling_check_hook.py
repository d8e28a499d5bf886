# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Check, before the first iteration, that the pipelines sample what the
backbone expects.

A backbone of ours declares how it reads a clip: ``num_segments`` segments
of ``frames_per_segment`` consecutive frames (TDN: 5, TDRL: 1). The
recognizer checks the frame count of every sample at the first forward,
but some wrong samplings have a valid count: for TDN with
``num_segments=4``, ``SampleFrames(clip_len=1, num_clips=20)`` yields 20
frames, as ``clip_len=5, num_clips=4`` does, and trains on the wrong
frames without an error. :class:`SamplingCheckHook` reads the
``SampleFrames`` of the train/val/test pipelines in the config and raises
:class:`SamplingConfigError` naming the pipeline, the setting and the fix.
"""
from typing import Iterator, List, Optional, Tuple

from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

# Transforms whose ``clip_len`` is the frames per segment and ``num_clips``
# the segments per view.
SAMPLERS = ('SampleFrames', 'DenseSampleFrames', 'SegmentSampleFrames')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class SamplingConfigError(ValueError):
    """A pipeline samples clips the backbone cannot read correctly."""


def _pipelines(dataset_cfg) -> Iterator[list]:
    """Pipelines of a dataset config, also inside dataset wrappers
    (``RepeatDataset``'s ``dataset``, ``ConcatDataset``'s ``datasets``)."""
    if not hasattr(dataset_cfg, 'get'):
        return
    if dataset_cfg.get('pipeline'):
        yield dataset_cfg['pipeline']
    inner = dataset_cfg.get('dataset')
    if inner is not None:
        yield from _pipelines(inner)
    for each in dataset_cfg.get('datasets', None) or []:
        yield from _pipelines(each)


def sampling_steps(cfg) -> Iterator[Tuple[str, dict]]:
    """``(dataloader name, SampleFrames config)`` of every pipeline."""
    for loader in LOADERS:
        loader_cfg = cfg.get(loader, None) if cfg is not None else None
        if not loader_cfg:
            continue
        for pipeline in _pipelines(loader_cfg.get('dataset')):
            for step in pipeline:
                if hasattr(step, 'get') and step.get('type') in SAMPLERS:
                    yield loader, step


def sampling_problems(cfg, num_segments: Optional[int],
                      frames_per_segment: int, backbone: str) -> List[str]:
    """What is wrong with the sampling in ``cfg`` for the backbone."""
    problems = []
    for loader, step in sampling_steps(cfg):
        clip_len = step.get('clip_len', None)
        num_clips = step.get('num_clips', 1)
        where = (f'{loader}.dataset.pipeline {step["type"]}(clip_len='
                 f'{clip_len}, num_clips={num_clips})')
        fix_clips = num_segments or '<num_segments>'
        if clip_len != frames_per_segment:
            interval = ', frame_interval=1' if frames_per_segment > 1 else ''
            problems.append(
                f'{where}: {backbone} reads {frames_per_segment} consecutive '
                f'frame(s) per segment, so set clip_len={frames_per_segment}'
                f' (e.g. SampleFrames(clip_len={frames_per_segment}'
                f'{interval}, num_clips={fix_clips})).')
        elif num_segments and (not isinstance(num_clips, int)
                               or num_clips % num_segments):
            problems.append(
                f'{where}: {backbone} was built with num_segments='
                f'{num_segments}, so num_clips must be {num_segments} (or, '
                f'for several test views, a multiple of it); or set '
                '`model.backbone.num_segments` to num_clips.')
    return problems


@HOOKS.register_module()
class SamplingCheckHook(Hook):
    """Raise before the first train/val/test iteration if a pipeline's
    ``SampleFrames`` does not fit the backbone.

    Only backbones that declare ``frames_per_segment`` (ours) are checked;
    others, e.g. MMAction2's ``ResNetTSM``, are left alone. Enabled in
    ``configs/_base_/default_runtime.py``::

        default_hooks = dict(sampling_check=dict(type='SamplingCheckHook'))
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        backbone = getattr(model, 'backbone', None)
        frames_per_segment = getattr(backbone, 'frames_per_segment', None)
        if frames_per_segment is None:
            return
        problems = sampling_problems(runner.cfg,
                                     getattr(backbone, 'num_segments', None),
                                     int(frames_per_segment),
                                     type(backbone).__name__)
        if problems:
            raise SamplingConfigError(
                'The data pipelines do not sample what the model reads:\n  '
                + '\n  '.join(problems))
