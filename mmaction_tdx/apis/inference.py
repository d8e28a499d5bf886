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

SAMPLERS = ('SampleFrames', 'DenseSampleFrames')


def load_label_map(path: str) -> List[str]:
    """Class names, one a line; line ``i`` names class ``i``."""
    with open(path) as f:
        labels = [line.strip() for line in f]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise ValueError(f'The label map {path} holds no class names.')
    return labels


def backbone_sampling(model_cfg: dict) -> Tuple[int, int]:
    """``(num_segments, frames_per_segment)`` the backbone of a model config
    reads, without building it.

    TDN (``ResNetTDN``) reads its short-term TDM's frames per segment (5
    unless set), or ``frames_per_segment``, or 1 without either; every
    other backbone of ours reads 1.
    """
    backbone = model_cfg.get('backbone', {})
    num_segments = backbone.get('num_segments', 8)
    per_segment = backbone.get('frames_per_segment', None)
    if per_segment is None and backbone.get('type') == 'ResNetTDN':
        stdm = backbone.get('short_term_tdm', dict(type='ShortTermTDM'))
        if stdm is not None:
            per_segment = stdm.get('frames_per_segment', 5)
    return num_segments, per_segment or 1


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


def _sampling_steps(pipeline: Sequence[dict]) -> List[dict]:
    return [
        step for step in pipeline
        if hasattr(step, 'get') and step.get('type') in SAMPLERS
    ]


def check_pipeline_sampling(pipeline: Sequence[dict], num_segments: int,
                            frames_per_segment: int) -> None:
    """Raise if the pipeline's ``SampleFrames`` does not give what the
    backbone reads (``clip_len == frames_per_segment`` and ``num_clips`` a
    multiple of ``num_segments``)."""
    for step in _sampling_steps(pipeline):
        clip_len = step.get('clip_len', None)
        num_clips = step.get('num_clips', 1)
        if clip_len != frames_per_segment or num_clips % num_segments:
            raise ValueError(
                f'The test pipeline samples {step["type"]}(clip_len='
                f'{clip_len}, num_clips={num_clips}), but the backbone '
                f'reads {num_segments} segments of {frames_per_segment} '
                f'frame(s). Set clip_len={frames_per_segment}, frame_'
                f'interval=1, num_clips={num_segments} in the config\'s '
                'test pipeline.')


def prepare_inference_config(cfg: Config) -> Config:
    """Return a copy of ``cfg`` whose ``test_pipeline`` is the one to
    recognise a single video file with.

    Order: the test loader's pipeline (what ``tools/test.py`` runs), then
    ``cfg.test_pipeline``, then :func:`default_video_pipeline` for the
    backbone. The chosen pipeline is checked against the backbone's
    ``num_segments`` / ``frames_per_segment``.
    """
    cfg = copy.deepcopy(cfg)
    dataset = (cfg.get('test_dataloader', None) or {}).get('dataset', {})
    while dataset and 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']  # RepeatDataset and similar wrappers
    pipeline = dataset.get('pipeline', None) or cfg.get('test_pipeline', None)
    num_segments, per_segment = backbone_sampling(cfg.model)
    if not pipeline:
        pipeline = default_video_pipeline(num_segments, per_segment)
    backbone = cfg.model.get('backbone', {})
    # A plain 2D backbone (TSN's ResNet) has no segment axis: any num_clips.
    has_segments = 'num_segments' in backbone or backbone.get('type') in (
        'ResNetTDN', 'ResNetTDRL', 'ResNetTSM')
    check_pipeline_sampling(pipeline, num_segments if has_segments else 1,
                            per_segment)
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
                          cfg_options: Optional[dict] = None) -> nn.Module:
    """MMAction2's ``init_recognizer`` on :func:`load_config`'s config.

    Args:
        config (str | Config): A config of ours (a full one or
            ``configs/_base_/models/*.py``).
        checkpoint (str, optional): Checkpoint file/URL; None keeps the
            random initialisation (ImageNet ``pretrained`` is never loaded
            here: ``init_recognizer`` clears it).
        device (str | torch.device): e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options (dict, optional): Overrides, as ``--cfg-options``.

    Returns:
        nn.Module: The recognizer in eval mode, with ``model.cfg``.
    """
    from mmaction.apis import init_recognizer
    cfg = load_config(config, cfg_options)
    if checkpoint is not None and not osp.isfile(checkpoint) \
            and '://' not in checkpoint:
        raise FileNotFoundError(f'Checkpoint {checkpoint} does not exist.')
    return init_recognizer(cfg, checkpoint, device=device)


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
    'backbone_sampling', 'check_pipeline_sampling', 'default_device',
    'default_video_pipeline', 'init_video_recognizer', 'load_config',
    'load_label_map', 'prepare_inference_config', 'recognize_video', 'top_k',
    'video_inputs'
]
