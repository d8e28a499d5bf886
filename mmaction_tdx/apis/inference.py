# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Recognise a real video with MMAction2's ``init_recognizer`` /
``inference_recognizer`` and a config of ours.

MMAction2's ``inference_recognizer`` builds its pipeline from
``cfg.test_pipeline``. In our configs the pipeline that ``tools/test.py``
really uses is ``cfg.test_dataloader.dataset.pipeline``; a config that
overrides the test loader's pipeline but inherits ``test_pipeline`` from a
dataset base (as TDN's 5-frame sampling does) would otherwise be run with
the base's 1-frame sampling. :func:`prepare_inference_config` makes
``test_pipeline`` the test loader's pipeline, or, for a model-only config
(``configs/_base_/models/*.py``), the standard single-view video pipeline
that samples what the backbone reads (:func:`default_video_pipeline`).
"""
import copy
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate

from mmaction_tdx.datasets.sampling_contract import (
    BackboneSampling,
    SamplingConfigError,
    backbone_sampling,
    bind_view_heads,
    pipeline_for_test,
    pipeline_problems,
)

from .checkpoint import load_checkpoint_strict


def load_label_map(path: str) -> List[str]:
    """Class names, one a line; line ``i`` names class ``i``."""
    with open(path) as f:
        labels = [line.strip() for line in f]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise ValueError(f'The label map {path} holds no class names.')
    return labels


def default_video_pipeline(num_segments: int,
                           frames_per_segment: int = 1,
                           short_side: int = 256,
                           crop_size: int = 224) -> List[dict]:
    """MMAction2's single-view test pipeline for a video file.

    ``num_segments`` segments of ``frames_per_segment`` consecutive frames,
    evenly spread (``test_mode``), short side resized to ``short_side``,
    centre crop ``crop_size``. Output ``inputs``:
    ``(num_segments * frames_per_segment, 3, crop_size, crop_size)``,
    uint8, RGB.
    """
    return [
        dict(type='DecordInit'),
        dict(
            type='SampleFrames',
            clip_len=frames_per_segment,
            frame_interval=1,
            num_clips=num_segments,
            out_of_bound_opt='repeat_last',
            test_mode=True),
        dict(type='DecordDecode'),
        dict(type='Resize', scale=(-1, short_side)),
        dict(type='CenterCrop', crop_size=crop_size),
        dict(type='FormatShape', input_format='NCHW'),
        dict(type='PackActionInputs')
    ]


def check_pipeline_sampling(pipeline: Sequence[dict],
                            num_segments: Optional[int],
                            frames_per_segment: int,
                            head=None,
                            backbone: str = 'the backbone') -> None:
    """Raise :class:`SamplingConfigError` if a test pipeline does not give
    a whole number of views of ``num_segments`` segments of
    ``frames_per_segment`` frames, or gives several views to a head that
    does not score views (the rule of
    :func:`~mmaction_tdx.datasets.sampling_contract.pipeline_problems`)."""
    problems = pipeline_problems(
        pipeline,
        BackboneSampling(backbone, num_segments, frames_per_segment),
        'test', head, 'The test pipeline')
    if problems:
        raise SamplingConfigError('\n'.join(problems))


def prepare_inference_config(cfg: Config) -> Config:
    """Return a copy of ``cfg`` whose ``test_pipeline`` is the one to
    recognise a single video file with.

    Order: the test loader's pipeline (what ``tools/test.py`` runs), then
    ``cfg.test_pipeline``, then :func:`default_video_pipeline` for the
    backbone. The chosen pipeline is checked against what the backbone
    reads and the head scores (one or a whole number of views, per view).
    """
    cfg = copy.deepcopy(cfg)
    pipeline = pipeline_for_test(cfg)
    backbone = backbone_sampling(cfg.model)
    if not pipeline:
        pipeline = default_video_pipeline(backbone.num_segments or 8,
                                          backbone.frames_per_segment)
    check_pipeline_sampling(pipeline, backbone.num_segments,
                            backbone.frames_per_segment,
                            cfg.model.get('cls_head', None), backbone.name)
    cfg.test_pipeline = pipeline
    return cfg


def load_config(config: Union[str, Config],
                cfg_options: Optional[dict] = None) -> Config:
    """Read a config (path or object), apply ``--cfg-options`` and prepare
    it for inference (:func:`prepare_inference_config`)."""
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg = copy.deepcopy(cfg)
        cfg.merge_from_dict(cfg_options)
    return prepare_inference_config(cfg)


def init_video_recognizer(config: Union[str, Config],
                          checkpoint: Optional[str] = None,
                          device: Union[str, torch.device] = 'cpu',
                          cfg_options: Optional[dict] = None,
                          strict: bool = True) -> nn.Module:
    """MMAction2's ``init_recognizer`` on :func:`load_config`'s config,
    loading the checkpoint strictly.

    Args:
        config (str | Config): A config of ours (a full one or
            ``configs/_base_/models/*.py``).
        checkpoint (str, optional): Checkpoint file/URL; None keeps the
            random initialisation (ImageNet ``pretrained`` is never loaded
            here: ``init_recognizer`` clears it).
        device (str | torch.device): e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options (dict, optional): Overrides, as ``--cfg-options``.
        strict (bool): Refuse a checkpoint with missing, unexpected or
            shape-mismatched keys (:func:`load_checkpoint_strict`).
            Defaults to True.

    Returns:
        nn.Module: The recognizer in eval mode, with ``model.cfg``; a
        per-view head gets the backbone's ``num_segments``.
    """
    from mmaction.apis import init_recognizer
    cfg = load_config(config, cfg_options)
    if checkpoint is not None and not osp.isfile(checkpoint) \
            and '://' not in checkpoint:
        raise FileNotFoundError(f'Checkpoint {checkpoint} does not exist.')
    model = init_recognizer(cfg, None, device=device)
    bind_view_heads(model)
    if checkpoint is not None:
        load_checkpoint_strict(
            model,
            checkpoint,
            strict=strict,
            config=config if isinstance(config, str) else None)
    return model


def video_inputs(model: nn.Module, video: str) -> Dict[str, list]:
    """Run the model's test pipeline on a video file and collate it as a
    batch of one: ``dict(inputs=[(V*T*L, 3, H, W) uint8 RGB],
    data_samples=[...])`` for ``model.test_step``."""
    if not osp.isfile(video):
        raise FileNotFoundError(f'Video {video} does not exist.')
    from mmengine.registry import init_default_scope
    init_default_scope(model.cfg.get('default_scope', 'mmaction'))
    pipeline = Compose(model.cfg.test_pipeline)
    data = pipeline(
        dict(filename=video, label=-1, start_index=0, modality='RGB'))
    return pseudo_collate([data])


def top_k(scores: torch.Tensor, labels: Sequence[str],
          k: int = 5) -> List[Tuple[str, float]]:
    """The ``k`` best ``(label, score)`` pairs of a ``(num_classes,)``
    score vector, best first."""
    if len(labels) != scores.numel():
        raise ValueError(
            f'The model scores {scores.numel()} classes but the label map '
            f'has {len(labels)} names; use the label map of the dataset the '
            'checkpoint was trained on (or set cls_head.num_classes).')
    values, indices = scores.flatten().topk(min(k, scores.numel()))
    return [(labels[i], float(v)) for v, i in zip(values, indices.tolist())]


def recognize_video(model: nn.Module,
                    video: str,
                    labels: Sequence[str],
                    k: int = 5) -> List[Tuple[str, float]]:
    """Top-``k`` ``(label, score)`` of a video file with MMAction2's
    ``inference_recognizer`` (the pipeline is ``model.cfg.test_pipeline``,
    set by :func:`init_video_recognizer`)."""
    from mmaction.apis import inference_recognizer
    if not osp.isfile(video):
        raise FileNotFoundError(f'Video {video} does not exist.')
    num_classes = getattr(getattr(model, 'cls_head', None), 'num_classes',
                          len(labels))
    if num_classes != len(labels):  # fail before the forward pass
        top_k(torch.zeros(num_classes), labels)
    result = inference_recognizer(model, video)
    return top_k(result.pred_score.cpu(), labels, k)


def default_device() -> str:
    """``'cuda:0'`` when a GPU is visible, else ``'cpu'``."""
    return 'cuda:0' if torch.cuda.is_available() else 'cpu'


__all__ = [
    'check_pipeline_sampling', 'default_device', 'default_video_pipeline',
    'init_video_recognizer', 'load_checkpoint_strict', 'load_config',
    'load_label_map', 'prepare_inference_config', 'recognize_video', 'top_k',
    'video_inputs'
]
