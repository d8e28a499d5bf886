# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Recognition of clips, long videos and live streams with one object.

:class:`VideoRecognizer` is built once from a config and a checkpoint (the
strict loading and pipeline preparation of :func:`init_video_recognizer`,
optionally ``switch_to_deploy()``) and recognises

* a clip: ``recognizer('video.mp4')`` or ``recognizer(frames)`` with
  ``frames`` an ``(F, H, W, 3)`` RGB uint8 array: the top-k labels;
* a long video, window by window: :meth:`VideoRecognizer.windows`;
* a live source (camera, URL, or a file read in real time), printing as it
  goes: :meth:`VideoRecognizer.stream`, the same windows as they complete.

**A window is a clip.** A window of ``W`` frames is sampled by the model's
own test pipeline exactly as that pipeline samples a video of ``W``
frames (segments, frames per segment, views; see
:mod:`mmaction_tdx.datasets.sampling_contract`): the pipeline's
``*Init``/``*Decode`` steps are replaced by MMAction2's ``ArrayDecode`` on
the window's frames, everything else runs unchanged. So the scores of a
window equal :func:`recognize_video` on that window cut out as its own
(losslessly encoded) video (tested to 1e-5).

**Frames are decoded once.** The sampler is deterministic in test mode, so
the frame offsets ``R`` a window reads are known before decoding. Window
``k`` starts at ``k * stride`` (plus, when the length is known, a last
window ending at the last frame, so the whole video is covered); a frame
``i`` is kept only while some pending window reads it, and dropped once
every window that reads it is done. Overlapping windows share frames; a
stream holds exactly the frames its pending predictions need.
"""
import copy
import time
from dataclasses import asdict, dataclass, field
from typing import (
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np
import torch
import torch.nn as nn
from mmengine.dataset import Compose, pseudo_collate

from .frame_sources import FrameSourceError, open_source

INIT_STEPS = ('DecordInit', 'OpenCVInit', 'PyAVInit')
DECODE_STEPS = ('DecordDecode', 'OpenCVDecode', 'PyAVDecode',
                'RawFrameDecode', 'ArrayDecode')


def switch_to_deploy(model: nn.Module) -> List[str]:
    """Call ``switch_to_deploy()`` of every submodule that has one (once,
    outermost first: a backbone's own call covers its units); returns
    their names."""
    done: List[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(d + '.') for d in done if d):
            continue
        if module is not model and hasattr(module, 'switch_to_deploy'):
            module.switch_to_deploy()
            done.append(name)
    return done


def array_pipeline(test_pipeline: Sequence[dict]) -> List[dict]:
    """The test pipeline with its file reading replaced by ``ArrayDecode``.

    ``*Init`` steps are dropped and the ``*Decode`` step becomes
    ``ArrayDecode``, which takes frames ``array[frame_inds]``; samplers,
    crops and formatting are kept as they are.
    """
    steps, decoded = [], False
    for step in test_pipeline:
        kind = step.get('type') if hasattr(step, 'get') else None
        if kind in INIT_STEPS:
            continue
        if kind in DECODE_STEPS:
            steps.append(dict(type='ArrayDecode'))
            decoded = True
            continue
        steps.append(copy.deepcopy(step))
    if not decoded:
        raise ValueError(
            'The test pipeline has no decode step (one of '
            f'{DECODE_STEPS}); cannot feed it frames. Use a config whose '
            'test pipeline reads videos, e.g. DecordInit + SampleFrames + '
            'DecordDecode.')
    return steps


class _WindowFrames:
    """``array[i]`` for ArrayDecode: frame ``start + i`` of the source."""

    def __init__(self, frames: Dict[int, np.ndarray], start: int) -> None:
        self.frames, self.start = frames, start

    def __getitem__(self, index) -> np.ndarray:
        return self.frames[self.start + int(index)]


@dataclass
class WindowPrediction:
    """Scores of one window.

    ``start``/``end`` are seconds (``end`` exclusive: ``end_frame / fps``);
    ``top_k`` is ``[(label, score), ...]``, best first; ``scores`` the
    ``(num_classes,)`` ``pred_score``; ``decode_s`` the wall time spent
    decoding frames since the previous window, ``model_s`` the pipeline
    and forward time, ``latency_s`` the time from the window's last frame
    arriving to its prediction.
    """
    index: int
    start_frame: int
    end_frame: int
    start: float
    end: float
    top_k: List[Tuple[str, float]]
    scores: np.ndarray = field(repr=False)
    decode_s: float = 0.0
    model_s: float = 0.0
    latency_s: float = 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop('scores')
        out['top_k'] = [dict(label=label, score=score)
                        for label, score in self.top_k]
        return out


def plan_windows(window: int, stride: int,
                 num_frames: Optional[int]) -> Iterator[Tuple[int, int]]:
    """``(start, end)`` frame ranges of the windows, in order.

    Windows of ``window`` frames every ``stride`` frames; with a known
    ``num_frames``, a last window ending at the last frame when the
    regular ones stop short of it, and one window over the whole video
    when it is shorter than ``window``. Without it (a live stream),
    regular windows for as long as frames come.
    """
    if num_frames is not None and num_frames <= window:
        yield 0, num_frames
        return
    start = 0
    while num_frames is None or start + window <= num_frames:
        yield start, start + window
        start += stride
    last_start = num_frames - window
    if start - stride != last_start:
        yield last_start, num_frames


class VideoRecognizer:
    """One recognizer for clips, long videos and streams (see the module
    docstring).

    Args:
        config (str | Config): A config of ours (full, or
            ``configs/_base_/models/*.py``).
        checkpoint (str, optional): Checkpoint file/URL, loaded strictly
            (:func:`init_video_recognizer`); None keeps random weights.
        labels (str | Sequence[str], optional): Label map file or class
            names; None names classes by their index.
        device (str, optional): e.g. ``'cpu'``, ``'cuda:0'``; default: a
            GPU when one is visible.
        deploy (bool): Apply the models' ``switch_to_deploy()`` (the same
            function, fewer passes; inference only).
        top_k (int): Labels returned per prediction.
        cfg_options (dict, optional): Config overrides.
        strict (bool): Refuse a checkpoint whose keys or shapes do not fit
            the model (default); False loads what fits.
    """

    def __init__(self,
                 config,
                 checkpoint: Optional[str] = None,
                 labels: Union[str, Sequence[str], None] = None,
                 device: Optional[str] = None,
                 deploy: bool = False,
                 top_k: int = 5,
                 cfg_options: Optional[dict] = None,
                 strict: bool = True) -> None:
        from . import inference
        kwargs = {} if strict else dict(strict=False)
        self.model = inference.init_video_recognizer(
            config,
            checkpoint,
            device=device or inference.default_device(),
            cfg_options=cfg_options,
            **kwargs)
        if deploy:
            switch_to_deploy(self.model)
        self.deploy = deploy
        self.checkpoint = checkpoint
        self.device = next(self.model.parameters()).device
        self.num_classes = int(self.model.cls_head.num_classes)
        if labels is None:
            labels = [str(i) for i in range(self.num_classes)]
        elif isinstance(labels, str):
            labels = inference.load_label_map(labels)
        if len(labels) != self.num_classes:
            raise ValueError(
                f'The model scores {self.num_classes} classes but the label '
                f'map has {len(labels)} names; use the label map of the '
                'dataset the checkpoint was trained on.')
        self.labels = list(labels)
        self.top_k = top_k
        from mmengine.registry import init_default_scope
        init_default_scope(self.model.cfg.get('default_scope', 'mmaction'))
        self._pipeline = Compose(array_pipeline(self.model.cfg.test_pipeline))
        self.min_frames = self._frames_read_by_one_view()

    # -- clips ------------------------------------------------------------
    def _frames_read_by_one_view(self) -> int:
        """``T * L`` (the sampling contract); for a backbone without a
        segment axis (TSN), the frames one view of the sampler draws."""
        from ..datasets.sampling_contract import (
            backbone_sampling,
            clip_sampling,
        )
        frames = backbone_sampling(self.model).frames
        if frames is None:
            clip = clip_sampling(self.model.cfg.test_pipeline)
            frames = clip.num_clips * clip.clip_len if clip else 1
        return frames

    def frame_offsets(self, num_frames: int) -> np.ndarray:
        """Sorted offsets (``0 <= r < num_frames``) of the frames the test
        pipeline reads from a clip of ``num_frames`` frames."""
        probe = dict(total_frames=num_frames, start_index=0,
                     modality='RGB', label=-1)
        for step in self._pipeline.transforms:
            if type(step).__name__ == 'ArrayDecode':
                break
            probe = step(probe)
        return np.unique(np.asarray(probe['frame_inds']).ravel())

    def clip_scores(self, frames, num_frames: int) -> np.ndarray:
        """``pred_score`` ``(num_classes,)`` of a clip.

        Args:
            frames: Indexable by frame number ``0 <= i < num_frames``
                (an array or a mapping), RGB ``(H, W, 3)`` uint8 frames.
            num_frames (int): The clip's length.
        """
        data = self._pipeline(
            dict(array=frames, total_frames=num_frames, start_index=0,
                 modality='RGB', label=-1))
        with torch.no_grad():
            result = self.model.test_step(pseudo_collate([data]))[0]
        return result.pred_score.float().cpu().numpy()

    def _top_k(self, scores: np.ndarray) -> List[Tuple[str, float]]:
        order = np.argsort(-scores, kind='stable')[:self.top_k]
        return [(self.labels[i], float(scores[i])) for i in order]

    def __call__(self, clip: Union[str, np.ndarray]
                 ) -> List[Tuple[str, float]]:
        """Top-k ``(label, score)`` of a video file (MMAction2's
        ``inference_recognizer``, as :func:`recognize_video`) or of an
        ``(F, H, W, 3)`` RGB uint8 array of frames (one clip)."""
        if isinstance(clip, str):
            from .inference import recognize_video
            return recognize_video(self.model, clip, self.labels,
                                   self.top_k)
        frames = np.asarray(clip)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError('Pass frames as an (F, H, W, 3) RGB uint8 '
                             f'array; got shape {frames.shape}.')
        return self._top_k(self.clip_scores(frames, len(frames)))

    # -- windows and streams ---------------------------------------------
    def window_frames(self, window_s: float, fps: float) -> int:
        """Frames in a window of ``window_s`` seconds; refuses a window
        shorter than the frames one view of the model reads."""
        frames = int(round(window_s * fps))
        if frames < self.min_frames:
            raise ValueError(
                f'A window of {window_s:g} s is {frames} frames at '
                f'{fps:g} fps, but the model reads {self.min_frames} '
                'frames per clip (segments x frames per segment). Use '
                f'--window {self.min_frames / fps:.2f} or more.')
        return frames

    def windows(self,
                source,
                window: float = 2.0,
                stride: Optional[float] = None,
                fps: Optional[float] = None,
                on_window=None) -> Iterator[WindowPrediction]:
        """Predictions of consecutive windows of a source.

        Args:
            source: A frame source (:mod:`.frame_sources`), a video path, a
                camera index or URL (opened with ``open_source``), or an
                ``(F, H, W, 3)`` array (then ``fps`` is needed).
            window (float): Window length in seconds.
            stride (float, optional): Seconds between window starts;
                defaults to ``window`` (no overlap).
            fps (float, optional): Frame rate, for arrays.
            on_window (callable, optional): Called with each prediction.

        Yields:
            WindowPrediction: In order of their start; see
            :func:`plan_windows` for which windows there are.
        """
        if isinstance(source, (str, int)):
            source = open_source(source)
        if isinstance(source, np.ndarray):
            if fps is None:
                raise ValueError('Pass fps= with an array of frames.')
            frames_iter, num_frames = iter(source), len(source)
        else:
            fps = fps or source.fps
            frames_iter, num_frames = iter(source), source.num_frames
        size = self.window_frames(window, fps)
        step = max(1, int(round((stride or window) * fps)))
        yield from self._run_windows(frames_iter, num_frames, fps, size,
                                     step, on_window)

    def _run_windows(self, frames_iter: Iterable[np.ndarray],
                     num_frames: Optional[int], fps: float, size: int,
                     step: int, on_window) -> Iterator[WindowPrediction]:
        plan = plan_windows(size, step, num_frames)
        upcoming = next(plan, None)
        pending: List[Tuple[int, int, frozenset]] = []
        kept: Dict[int, np.ndarray] = {}
        offsets: Dict[int, frozenset] = {}
        index, seen, decode_s = 0, 0, 0.0
        tick = time.perf_counter()
        for frame_no, frame in enumerate(frames_iter):
            seen = frame_no + 1
            # Every window that may read this frame is planned first.
            while upcoming is not None and upcoming[0] <= frame_no:
                start, end = upcoming
                if end - start not in offsets:
                    offsets[end - start] = frozenset(
                        self.frame_offsets(end - start).tolist())
                pending.append((start, end, frozenset(
                    start + r for r in offsets[end - start])))
                upcoming = next(plan, None)
            if any(frame_no in reads for _, _, reads in pending):
                kept[frame_no] = frame
            while pending and pending[0][1] == seen:
                start, end, _ = pending.pop(0)
                arrived = time.perf_counter()
                decode_s += arrived - tick
                scores = self.clip_scores(_WindowFrames(kept, start),
                                          end - start)
                done = time.perf_counter()
                needed = frozenset().union(*(r for _, _, r in pending))
                for frame_id in [i for i in kept if i not in needed]:
                    del kept[frame_id]
                prediction = WindowPrediction(
                    index=index,
                    start_frame=start,
                    end_frame=end,
                    start=start / fps,
                    end=end / fps,
                    top_k=self._top_k(scores),
                    scores=scores,
                    decode_s=decode_s,
                    model_s=done - arrived,
                    latency_s=done - arrived)
                index += 1
                if on_window is not None:
                    on_window(prediction)
                yield prediction
                decode_s, tick = 0.0, time.perf_counter()
            if upcoming is None and not pending:
                break
        if index == 0:
            if seen == 0:
                raise FrameSourceError('The source delivered no frame.')
            raise FrameSourceError(
                f'The source ended after {seen} frames ({seen / fps:.2f} s),'
                f' before the first window of {size} frames was complete.')
        if num_frames is not None and seen < num_frames:
            raise FrameSourceError(
                f'The source ended after {seen} of the {num_frames} frames '
                'its container announces; the windows after that are '
                'missing.')


def smooth_scores(scores: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over windows (``width`` odd, >= 1) of a
    ``(num_windows, num_classes)`` array; the ends average what exists."""
    if width <= 1:
        return scores
    if width % 2 == 0:
        raise ValueError(f'--smooth must be odd, got {width}.')
    half = width // 2
    out = np.empty_like(scores)
    for i in range(len(scores)):
        out[i] = scores[max(0, i - half):i + half + 1].mean(axis=0)
    return out


__all__ = [
    'VideoRecognizer', 'WindowPrediction', 'array_pipeline', 'plan_windows',
    'smooth_scores', 'switch_to_deploy'
]
