# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Data pipeline throughput: TDN's sampling against TSN's, with decord.

TDN needs ``T`` segments of ``L = 5`` consecutive frames
(``SampleFrames(clip_len=5, frame_interval=1, num_clips=T)``), TSN one
frame per segment (``clip_len=1``). Decoding dominates the cost of a clip,
and a run of consecutive frames should cost about one seek (decode from
the preceding key frame) plus four cheap next-frame decodes, not five
seeks. :func:`run_pipeline_benchmark` measures clips per second of one
worker (one process, no data-loader parallelism) for both samplings, on
real videos, through MMAction2's own transforms, in two variants:

* ``decode``: ``DecordInit``, ``SampleFrames``, ``DecordDecode``;
* ``train``: the same plus MMAction2's usual TSN training transforms
  (``Resize``, ``RandomResizedCrop``, ``Resize`` to 224, ``Flip``,
  ``FormatShape``, ``PackActionInputs``), whose cost grows with the
  number of frames.

MMAction2's ``DecordDecode`` calls decord's ``get_batch``, which only seeks
when the next index is not the frame after the current one (or lies
beyond the current key-frame interval), so consecutive runs already cost
one seek per segment.
"""
import os
import os.path as osp
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov')


@dataclass
class PipelineSettings:
    """Args:
        num_segments (int): ``T``.
        tdn_clip_len (int): Consecutive frames per TDN segment (5).
        repeats (int): Passes over the videos (clips per video).
        img_size (int): Crop size of the ``train`` variant.
        seed (int): NumPy seed of the random sampling and augmentation.
    """
    num_segments: int = 8
    tdn_clip_len: int = 5
    repeats: int = 5
    img_size: int = 224
    seed: int = 0


@dataclass
class ThroughputResult:
    """Clips per second of one worker for one sampling and variant."""
    sampling: str
    variant: str
    frames_per_clip: int
    clips: int
    clips_per_s: float
    ms_per_clip_median: float
    ms_per_clip_q1: float
    ms_per_clip_q3: float
    samples_ms: List[float] = field(default_factory=list)


def find_videos(folder: str) -> List[str]:
    """Video files directly in ``folder``, sorted."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'No video folder {folder!r}.')
    videos = sorted(
        osp.join(folder, name) for name in os.listdir(folder)
        if name.lower().endswith(VIDEO_EXTENSIONS))
    if not videos:
        raise FileNotFoundError(
            f'No videos ({", ".join(VIDEO_EXTENSIONS)}) in {folder!r}.')
    return videos


def sampling_transforms(clip_len: int, settings: PipelineSettings,
                        variant: str) -> List[dict]:
    """MMAction2 transform configs for one sampling and variant.

    Args:
        clip_len (int): Consecutive frames per segment (1: TSN, 5: TDN).
        settings (PipelineSettings): Shared settings.
        variant (str): ``'decode'`` or ``'train'``.
    """
    transforms = [
        dict(type='DecordInit'),
        dict(
            type='SampleFrames',
            clip_len=clip_len,
            frame_interval=1,
            num_clips=settings.num_segments),
        dict(type='DecordDecode'),
    ]
    if variant == 'train':
        size = settings.img_size
        transforms += [
            dict(type='Resize', scale=(-1, 256)),
            dict(type='RandomResizedCrop'),
            dict(type='Resize', scale=(size, size), keep_ratio=False),
            dict(type='Flip', flip_ratio=0.5),
            dict(type='FormatShape', input_format='NCHW'),
            dict(type='PackActionInputs'),
        ]
    elif variant != 'decode':
        raise ValueError(f"variant must be 'decode' or 'train', got "
                         f'{variant!r}.')
    return transforms


def build_pipeline(transforms: Sequence[dict]) -> Callable[[dict], dict]:
    """Compose MMAction2 transforms (registered in ``mmaction`` scope)."""
    from mmaction.registry import TRANSFORMS
    from mmaction.utils import register_all_modules
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmaction'):
        return Compose([TRANSFORMS.build(t) for t in transforms])


def run_pipeline_benchmark(
        videos: Sequence[str],
        settings: PipelineSettings,
        progress: Optional[Callable[[str], None]] = None
) -> List[ThroughputResult]:
    """Clips per second of one worker, TSN and TDN sampling interleaved.

    Every repeat loads every video once with each sampling and variant,
    in turn, so both see the same videos, file cache and machine load.

    Returns:
        list[ThroughputResult]: For ``decode`` and ``train``: TSN, TDN.
    """
    progress = progress or (lambda _: None)
    samplings = dict(tsn=1, tdn=settings.tdn_clip_len)
    variants = ('decode', 'train')
    pipelines = {(s, v): build_pipeline(sampling_transforms(L, settings, v))
                 for s, L in samplings.items() for v in variants}
    times: Dict[tuple, List[float]] = {key: [] for key in pipelines}
    np.random.seed(settings.seed)
    for _ in range(settings.repeats):
        for video in videos:
            for key, pipeline in pipelines.items():
                info = dict(
                    filename=video, label=0, start_index=0, modality='RGB')
                start = time.perf_counter()
                pipeline(info)
                times[key].append(time.perf_counter() - start)
        progress('pipeline repeat')
    results = []
    for variant in variants:
        for sampling, clip_len in samplings.items():
            seconds = times[(sampling, variant)]
            ms = sorted(1e3 * s for s in seconds)
            q1, _, q3 = (statistics.quantiles(ms, n=4, method='inclusive')
                         if len(ms) > 1 else (ms[0], ms[0], ms[0]))
            results.append(
                ThroughputResult(
                    sampling=sampling,
                    variant=variant,
                    frames_per_clip=settings.num_segments * clip_len,
                    clips=len(ms),
                    clips_per_s=len(ms) / sum(seconds),
                    ms_per_clip_median=statistics.median(ms),
                    ms_per_clip_q1=q1,
                    ms_per_clip_q3=q3,
                    samples_ms=ms))
    return results


def throughput_ratios(results: Sequence[ThroughputResult]) -> Dict[str, float]:
    """TDN's clips/s over TSN's, per variant."""
    rate = {(r.sampling, r.variant): r.clips_per_s for r in results}
    return {
        variant: rate[('tdn', variant)] / rate[('tsn', variant)]
        for (sampling, variant) in rate if sampling == 'tsn'
    }


def format_pipeline_table(results: Sequence[ThroughputResult]) -> str:
    """A Markdown table of throughput with TDN/TSN ratios."""
    ratio = throughput_ratios(results)
    lines = [
        '| variant | sampling | frames/clip | clips | clips/s per worker | '
        'ms/clip (median, IQR) | TDN/TSN clips/s |', '|---|---|---|---|---|'
        '---|---|'
    ]
    for r in results:
        cell = f'{ratio[r.variant]:.2f}' if r.sampling == 'tdn' else ''
        lines.append(
            f'| {r.variant} | {r.sampling} | {r.frames_per_clip} | '
            f'{r.clips} | {r.clips_per_s:.2f} | {r.ms_per_clip_median:.1f} '
            f'({r.ms_per_clip_q1:.1f}-{r.ms_per_clip_q3:.1f}) | {cell} |')
    return '\n'.join(lines)


def pipeline_results_to_json(results: Sequence[ThroughputResult],
                             settings: PipelineSettings,
                             videos: Sequence[str]) -> Dict:
    return dict(
        settings=asdict(settings),
        videos=list(videos),
        results=[asdict(r) for r in results],
        tdn_over_tsn=throughput_ratios(results))
