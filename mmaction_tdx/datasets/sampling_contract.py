# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The sampling-and-view contract between a pipeline and a backbone,
defined once.

A segment backbone (TDN, TDRL, TSM) reads a *view* as ``T`` segments
(``num_segments``) of ``L`` consecutive frames (``frames_per_segment``;
TDN: 5, others 1). One sample of the test pipeline holds ``V`` views,

    ``inputs``: ``(V * T * L, 3, H, W)``, view-major,

where ``V = clip views x (num_clips / T) x crop views``. MMAction2 1.2.0
keeps every view a contiguous block of ``T * L`` frames with
``FormatShape('NCHW')``: ``ThreeCrop``/``TenCrop`` put the crops outermost
(each crop repeats all sampled frames), ``twice_sample`` appends the
second temporal sampling after the first, ``SegmentSampleFrames`` and
``DenseSampleFrames`` (test mode) concatenate their views, and
``SampleFrames(num_clips=k*T)`` yields ``k`` consecutive blocks of ``T``
segments (each covering ``1/k`` of the video, as MMAction2's
``TSMHead`` splits them).

The rule (:func:`sampling_problems`): ``clip_len == L`` everywhere; the
train pipeline samples exactly one view (``num_clips == T``, no crop
views); val/test pipelines a whole number of views (``num_clips`` a
multiple of ``T``, ``twice_sample``, ``num_views``, crops), and with more
than one view the head must score each view (a plain ``TSNHead`` on a
segment backbone averages the features of all views instead).

The samplers are registered in :data:`SAMPLERS` (one place); crops in
:data:`CROP_VIEWS`.
"""
import inspect
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
MODES = {'train_dataloader': 'train', 'val_dataloader': 'val',
         'test_dataloader': 'test'}
# Spatial views of the crops that repeat every frame (crop-major).
CROP_VIEWS = {'ThreeCrop': 3, 'TenCrop': 10}
# Heads that average the features of all segments of a sample before the
# classifier: wrong for several views on a segment backbone.
FEATURE_AVERAGING_HEADS = ('TSNHead', )


class SamplingConfigError(ValueError):
    """A pipeline samples clips the backbone or head cannot read
    correctly."""


@dataclass(frozen=True)
class ClipSampling:
    """What one sampler step draws per video.

    Attributes:
        sampler (str): The transform's type.
        clip_len (int): ``L``, consecutive frames per segment.
        num_clips (int): Segments per sampled clip view.
        clip_views (int): Temporal views the sampler itself draws
            (``twice_sample``: 2, ``SegmentSampleFrames.num_views``,
            ``DenseSampleFrames`` in test mode: ``num_sample_positions``).
        test_mode (bool): Whether the step samples in test mode.
        problem (str, optional): Why the step cannot give whole views
            (e.g. ``twice_sample`` with ``clip_len > 1``).
    """

    sampler: str
    clip_len: int
    num_clips: int
    clip_views: int = 1
    test_mode: bool = False
    problem: Optional[str] = None

    @property
    def frames(self) -> int:
        """Frames drawn: ``clip_views * num_clips * clip_len``."""
        return self.clip_views * self.num_clips * self.clip_len


def _sample_frames(step: dict) -> ClipSampling:
    clip_len = int(step.get('clip_len', 1))
    test_mode = bool(step.get('test_mode', False))
    views, problem = 1, None
    # MMAction2 draws the second sampling only in test mode.
    if step.get('twice_sample', False) and test_mode:
        views = 2
        if clip_len > 1:
            # The 3D branch of SampleFrames._get_test_clips spreads 2*T
            # snippets over T-1 gaps: the second view runs off the end.
            problem = (
                'twice_sample works only with clip_len=1 in MMAction2 '
                "1.2.0; use dict(type='SegmentSampleFrames', clip_len="
                f"{clip_len}, num_clips=..., num_views=2, test_mode=True)")
    return ClipSampling('SampleFrames', clip_len,
                        int(step.get('num_clips', 1)), views, test_mode,
                        problem)


def _dense_sample_frames(step: dict) -> ClipSampling:
    test_mode = bool(step.get('test_mode', False))
    views = int(step.get('num_sample_positions', 10)) if test_mode else 1
    return ClipSampling('DenseSampleFrames', int(step.get('clip_len', 1)),
                        int(step.get('num_clips', 1)), views, test_mode)


def _segment_sample_frames(step: dict) -> ClipSampling:
    test_mode = bool(step.get('test_mode', False))
    return ClipSampling('SegmentSampleFrames', int(step.get('clip_len', 1)),
                        int(step.get('num_clips', 8)),
                        int(step.get('num_views', 1)), test_mode)


# The samplers whose ``clip_len`` is the frames per segment and whose
# ``num_clips`` counts segments; register a new one here (or with
# :func:`register_sampler`).
SAMPLERS: Dict[str, Callable[[dict], ClipSampling]] = {
    'SampleFrames': _sample_frames,
    'DenseSampleFrames': _dense_sample_frames,
    'SegmentSampleFrames': _segment_sample_frames,
}


def register_sampler(name: str, read: Callable[[dict], ClipSampling]):
    """Add a sampler: ``read(step_cfg) -> ClipSampling``."""
    SAMPLERS[name] = read
    return read


def _is_step(step) -> bool:
    return hasattr(step, 'get') and isinstance(step.get('type'), str)


def clip_sampling(pipeline) -> Optional[ClipSampling]:
    """The pipeline's sampler step read as :class:`ClipSampling`; None if
    it has none of :data:`SAMPLERS`."""
    for step in pipeline or ():
        if _is_step(step) and step['type'] in SAMPLERS:
            return SAMPLERS[step['type']](step)
    return None


def crop_views(pipeline) -> int:
    """Spatial views: ``ThreeCrop`` 3, ``TenCrop`` 10, else 1."""
    views = 1
    for step in pipeline or ():
        if _is_step(step):
            views *= CROP_VIEWS.get(step['type'], 1)
    return views


def _hw(size) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    return int(size[1]), int(size[0])  # MMAction2 sizes are (w, h)


def crop_size(pipeline) -> Optional[Tuple[int, int]]:
    """``(H, W)`` of the output frames: the last ``CenterCrop``/
    ``ThreeCrop``/``TenCrop``, or ``Resize(keep_ratio=False)``; None if
    the pipeline does not fix it."""
    size = None
    for step in pipeline or ():
        if not _is_step(step):
            continue
        if step['type'] in ('CenterCrop', ) + tuple(CROP_VIEWS):
            size = _hw(step['crop_size'])
        elif step['type'] == 'Resize' and step.get('keep_ratio') is False:
            scale = step['scale']
            if min(scale) > 0:
                size = _hw(tuple(scale))
    return size


@dataclass(frozen=True)
class BackboneSampling:
    """What a backbone reads per view.

    Attributes:
        name (str): The backbone's type.
        num_segments (int, optional): ``T``; None for a backbone without a
            segment axis (e.g. TSN's plain ResNet), which reads any count.
        frames_per_segment (int): ``L``.
    """

    name: str
    num_segments: Optional[int]
    frames_per_segment: int = 1

    @property
    def frames(self) -> Optional[int]:
        """``T * L`` frames per view (None without a segment axis)."""
        if self.num_segments is None:
            return None
        return self.num_segments * self.frames_per_segment


def _init_default(cls, name: str):
    try:
        param = inspect.signature(cls.__init__).parameters.get(name)
    except (TypeError, ValueError):
        return None
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return param.default


def backbone_sampling(model) -> BackboneSampling:
    """``(num_segments, frames_per_segment)`` a backbone reads, from a
    built recognizer (or backbone) or from a model config without
    building it.

    For a config, ``MODELS.get(type).sampling_of(**backbone_cfg)`` when the
    class defines it (ours), else the ``num_segments`` key (or the
    constructor's default) and the class attribute ``frames_per_segment``
    (default 1).
    """
    if isinstance(model, dict) or hasattr(model, 'items'):  # a config
        backbone = model.get('backbone', model)
    else:
        backbone = getattr(model, 'backbone', model)
        segments = getattr(backbone, 'num_segments', None)
        return BackboneSampling(
            type(backbone).__name__,
            int(segments) if segments is not None else None,
            int(getattr(backbone, 'frames_per_segment', 1) or 1))
    kwargs = {k: v for k, v in dict(backbone).items() if k != 'type'}
    name = backbone.get('type', '')
    cls = _backbone_class(name)
    if cls is not None and hasattr(cls, 'sampling_of'):
        segments, per_segment = cls.sampling_of(**kwargs)
        return BackboneSampling(name, segments, int(per_segment))
    segments = kwargs.get('num_segments', None)
    if segments is None and cls is not None:
        segments = _init_default(cls, 'num_segments')
    per_segment = kwargs.get('frames_per_segment', None)
    if per_segment is None:
        per_segment = getattr(cls, 'frames_per_segment', 1)
    if not isinstance(per_segment, int):
        per_segment = 1  # e.g. a property: only known once built
    return BackboneSampling(name,
                            int(segments) if segments is not None else None,
                            per_segment)


def _backbone_class(name):
    if not isinstance(name, str):
        return name if inspect.isclass(name) else None
    from mmaction.registry import MODELS

    import mmaction_tdx.models  # noqa: F401  (registers ours)
    try:
        return MODELS.get(name)
    except KeyError:
        return None


def pipeline_views(pipeline, num_segments: Optional[int]) -> int:
    """``V``: views one sample of ``pipeline`` holds for a backbone of
    ``num_segments`` (``clip views * num_clips / T * crop views``; rounds
    down when ``num_clips`` is no multiple of ``T``, see
    :func:`pipeline_problems`)."""
    sampling = clip_sampling(pipeline)
    views = crop_views(pipeline)
    if sampling is None:
        return views
    blocks = 1
    if num_segments:
        blocks = max(sampling.num_clips // num_segments, 1)
    return sampling.clip_views * blocks * views


def input_shape(pipeline) -> Tuple[int, int, int, int]:
    """``(V*T*L, 3, H, W)`` one video yields through ``pipeline``.

    Raises:
        ValueError: If the pipeline has no known sampler or does not fix
            the spatial size (a crop or ``Resize(keep_ratio=False)``).
    """
    sampling = clip_sampling(pipeline)
    size = crop_size(pipeline)
    if sampling is None or size is None:
        raise ValueError(
            'Cannot read the input shape from the pipeline: it needs one of '
            f'{", ".join(SAMPLERS)} and a CenterCrop/ThreeCrop/TenCrop or '
            'a Resize with keep_ratio=False.')
    return sampling.frames * crop_views(pipeline), 3, size[0], size[1]


def head_scores_views(head) -> Optional[bool]:
    """Whether a head (module or config) scores each view on its own.

    True for heads declaring ``scores_views = True`` (ours) and for
    MMAction2's ``TSMHead``; False for ``TSNHead``, which averages the
    features of all segments; None when unknown (not checked).
    """
    if head is None:
        return None
    if hasattr(head, 'get') and not hasattr(head, 'forward'):
        name = head.get('type')
        cls = _backbone_class(name)
    else:
        cls, name = type(head), type(head).__name__
    if cls is not None and getattr(cls, 'scores_views', False):
        return True
    if name == 'TSMHead':
        return True
    if name in FEATURE_AVERAGING_HEADS:
        return False
    return None


def pipeline_problems(pipeline,
                      backbone: BackboneSampling,
                      mode: str = 'test',
                      head=None,
                      where: str = 'pipeline') -> List[str]:
    """What is wrong with one pipeline for the backbone (and head).

    Args:
        pipeline (list[dict]): Transform configs.
        backbone (BackboneSampling): What the backbone reads.
        mode (str): ``'train'`` (exactly one view) or ``'val'``/``'test'``
            (a whole number of views).
        head (dict | nn.Module, optional): The classification head; with
            more than one view it must score each view.
        where (str): Name of the pipeline in the messages.

    Returns:
        list[str]: Problems, each naming the setting and the fix.
    """
    sampling = clip_sampling(pipeline)
    if sampling is None:
        return []
    T, L = backbone.num_segments, backbone.frames_per_segment
    step = (f'{where} {sampling.sampler}(clip_len={sampling.clip_len}, '
            f'num_clips={sampling.num_clips})')
    interval = ', frame_interval=1' if L > 1 else ''
    fix_t = T or '<num_segments>'
    if sampling.clip_len != L:
        return [
            f'{step}: {backbone.name} reads {L} consecutive frame(s) per '
            f'segment, so set clip_len={L} (e.g. SampleFrames(clip_len={L}'
            f'{interval}, num_clips={fix_t})).'
        ]
    if sampling.problem:
        return [f'{step}: {sampling.problem}.']
    if T is None:
        return []
    problems = []
    crops = crop_views(pipeline)
    if mode == 'train':
        if sampling.num_clips != T or sampling.clip_views != 1:
            problems.append(
                f'{step}: training samples exactly one view; {backbone.name}'
                f' was built with num_segments={T}, so set num_clips={T} '
                '(several views are a test protocol), or set '
                '`model.backbone.num_segments` to num_clips.')
        if crops != 1:
            problems.append(
                f'{where}: a {crops}-crop transform in training gives '
                f'{crops} views per sample; training takes one view (use a '
                'single crop, e.g. RandomResizedCrop or CenterCrop).')
        return problems
    if sampling.num_clips % T:
        return [
            f'{step}: {backbone.name} was built with num_segments={T}, so '
            f'num_clips must be {T} (or, for several test views, a multiple'
            ' of it, or num_views/twice_sample); or set '
            '`model.backbone.num_segments` to num_clips.'
        ]
    views = pipeline_views(pipeline, T)
    if views > 1 and head_scores_views(head) is False:
        name = head.get('type') if hasattr(head, 'get') else type(
            head).__name__
        problems.append(
            f'{where} gives {views} views per video, but the head {name} '
            f'averages the features of all {views * T} segments instead of '
            "scoring each view. Use cls_head=dict(type='ViewConsensusTSNHead"
            f"', segments_per_view={T}, ...) (same arguments as TSNHead), "
            'or test one view.')
    return problems


def _pipelines(dataset_cfg) -> Iterator[list]:
    """Pipelines of a dataset config, also inside wrappers
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


def config_pipelines(cfg) -> Iterator[Tuple[str, list]]:
    """``(dataloader name, pipeline)`` of every loader in ``cfg``."""
    for loader in LOADERS:
        loader_cfg = cfg.get(loader, None) if cfg is not None else None
        if not loader_cfg:
            continue
        for pipeline in _pipelines(loader_cfg.get('dataset')):
            yield loader, pipeline


def pipeline_for_test(cfg) -> Optional[list]:
    """The pipeline ``tools/test.py`` runs: the test loader's, else
    ``cfg.test_pipeline``; None without either."""
    for loader, pipeline in config_pipelines(cfg):
        if loader == 'test_dataloader':
            return pipeline
    return cfg.get('test_pipeline', None) or None


def sampling_problems(cfg,
                      backbone: Optional[BackboneSampling] = None,
                      head=None) -> List[str]:
    """What is wrong with the sampling of every loader in ``cfg``.

    Args:
        cfg (Config | dict): A full config (``*_dataloader``).
        backbone (BackboneSampling, optional): Defaults to
            ``backbone_sampling(cfg.model)``.
        head (dict | nn.Module, optional): Defaults to
            ``cfg.model.cls_head``.
    """
    if backbone is None:
        backbone = backbone_sampling(cfg['model'])
    if head is None and hasattr(cfg, 'get'):
        head = (cfg.get('model', None) or {}).get('cls_head', None)
    problems = []
    for loader, pipeline in config_pipelines(cfg):
        problems += pipeline_problems(
            pipeline, backbone, MODES[loader], head,
            f'{loader}.dataset.pipeline')
    return problems


def check_sampling(cfg, backbone=None, head=None) -> None:
    """Raise :class:`SamplingConfigError` listing
    :func:`sampling_problems`."""
    problems = sampling_problems(cfg, backbone, head)
    if problems:
        raise SamplingConfigError(
            'The data pipelines do not sample what the model reads:\n  ' +
            '\n  '.join(problems))


def bind_view_heads(model) -> None:
    """Give a per-view head without ``segments_per_view`` the backbone's
    ``num_segments`` (heads with ``bind_backbone``)."""
    head = getattr(model, 'cls_head', None)
    bind = getattr(head, 'bind_backbone', None)
    if bind is not None:
        bind(model.backbone)


__all__ = [
    'BackboneSampling', 'CROP_VIEWS', 'ClipSampling', 'SAMPLERS',
    'SamplingConfigError', 'backbone_sampling', 'bind_view_heads',
    'check_sampling', 'clip_sampling', 'config_pipelines', 'crop_size',
    'crop_views', 'head_scores_views', 'input_shape', 'pipeline_problems',
    'pipeline_views', 'register_sampler', 'sampling_problems',
    'pipeline_for_test'
]
