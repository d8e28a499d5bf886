# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Pre-flight check of the videos (or frame folders) of an annotation list.

The logic of ``tools/analysis/check_videos.py``: open every video of a
video list, count its frames, decode its first, middle and last frame, and
write a cleaned list without the unreadable ones (and, with ``min_frames``,
without the too short ones). For a rawframe list, check that every listed
frame file exists and decode the first, middle and last one. Unlike
MMAction2's ``tools/analysis_tools/check_videos.py`` it needs no config,
checks frame counts, keeps the annotation lines as they are and reports why
each entry was dropped.

A video is broken here exactly when the robust datasets would skip it:
the file system facts come from the same function
(:func:`~.broken_samples.file_fact`: missing, empty, or not a regular file
such as a named pipe, which is refused before any decoder opens it), and
the probe runs MMAction2's own decode transforms (``DecordInit`` +
``DecordDecode``, or ``OpenCVInit`` + ``OpenCVDecode``) on the first,
middle and last frame, with the reasons worded by the same
:func:`~.broken_samples.describe_failure`.

Each check runs in a worker process of a ``pebble.ProcessPool`` with a
per-task time limit: a file that makes the decoder hang (a stalled network
mount, a damaged stream) is reported as unreadable and its worker replaced,
and a decoder that crashes takes down only its worker; the other files are
checked anyway, and the results come in list order.
"""
import multiprocessing
import os
import os.path as osp
import sys
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.utils import ProgressBar
from pebble import ProcessExpired, ProcessPool

from .annotation_checks import (
    parse_annotation_file,
    parse_rawframe_line,
    read_annotation_lines,
    split_fields,
)
from .broken_samples import describe_failure, file_fact, wrong_file_type

OK = 'ok'
UNREADABLE = 'unreadable'
TOO_SHORT = 'too short'


@dataclass(frozen=True)
class VideoCheck:
    """The verdict on one video.

    Attributes:
        path (str): The video file.
        status (str): ``OK``, ``UNREADABLE`` or ``TOO_SHORT``.
        num_frames (int): Frames the decoder reports (0 if unreadable).
        reason (str): Why it is not OK (empty if OK).
    """
    path: str
    status: str
    num_frames: int = 0
    reason: str = ''


def _probe_frames(num_frames: int) -> List[int]:
    """The frames to decode: first, middle and last."""
    return sorted({0, num_frames // 2, num_frames - 1})


# decoder name -> the pipeline's (init, decode) transforms that read a video.
DECODE_TRANSFORMS: Dict[str, Tuple[str, str]] = dict(
    decord=('DecordInit', 'DecordDecode'),
    opencv=('OpenCVInit', 'OpenCVDecode'))
# The decoders check_videos.py offers (the keys of DECODE_TRANSFORMS).
PROBES = tuple(DECODE_TRANSFORMS)


class ProbeFailure(Exception):
    """A decode transform of :func:`probe_video` raised ``exc``.

    Attributes:
        step (str): The transform, e.g. ``'DecordInit'``.
        exc (Exception): What it raised.
    """

    def __init__(self, step: str, exc: Exception) -> None:
        super().__init__(f'{step} raised {type(exc).__name__}: {exc}')
        self.step, self.exc = step, exc


def probe_video(path: str, decoder: str = 'decord') -> int:
    """Decode the first, middle and last frame of ``path`` with the
    pipeline's own transforms (see :data:`DECODE_TRANSFORMS`).

    Returns:
        int: The number of frames the init transform reports.

    Raises:
        ProbeFailure: A transform raised; names it.
    """
    from mmaction.registry import TRANSFORMS
    init, decode = DECODE_TRANSFORMS[decoder]
    results = dict(filename=path, start_index=0, modality='RGB')
    for name in (init, decode):
        try:
            if name == decode:
                total = results['total_frames']
                if total < 1:
                    raise ValueError(f'the video reports {total} frames')
                results['frame_inds'] = np.array(_probe_frames(total))
            results = TRANSFORMS.build(dict(type=name))(results)
        except Exception as exc:
            raise ProbeFailure(name, exc) from exc
    return results['total_frames']


def check_video(path: str, min_frames: int = 1,
                decoder: str = 'decord') -> VideoCheck:
    """Check that ``path`` decodes and has at least ``min_frames`` frames.

    Args:
        path (str): The video file.
        min_frames (int): Fewer frames make the video ``TOO_SHORT``.
            Training does not need this (``SampleFrames(...,
            out_of_bound_opt='repeat_last')`` repeats the last frame);
            use it to drop videos that would be mostly repeats.
        decoder (str): ``'decord'`` or ``'opencv'``, as the training
            pipeline decodes.

    Returns:
        VideoCheck: The verdict.
    """
    fact = file_fact(path)
    if fact:
        return VideoCheck(path, UNREADABLE, reason=fact)
    try:
        num_frames = probe_video(path, decoder)
    except ProbeFailure as failure:
        return VideoCheck(
            path, UNREADABLE,
            reason=describe_failure(path, failure.exc, failure.step))
    if num_frames < min_frames:
        return VideoCheck(
            path, TOO_SHORT, num_frames,
            f'{num_frames} frames, fewer than min_frames={min_frames}')
    return VideoCheck(path, OK, num_frames)


@dataclass
class VideoListReport:
    """Result of :func:`check_video_list`.

    Attributes:
        checks (list[tuple[int, VideoCheck]]): Line number and verdict of
            every checked video, in file order.
        kept_lines (list[str]): Annotation lines of the OK videos, verbatim.
        out (str, optional): Where the kept lines were written.
    """
    checks: List[Tuple[int, VideoCheck]] = field(default_factory=list)
    kept_lines: List[str] = field(default_factory=list)
    out: Optional[str] = None

    def count(self, status: str) -> int:
        """How many videos have ``status``."""
        return sum(check.status == status for _, check in self.checks)

    @property
    def problems(self) -> List[Tuple[int, VideoCheck]]:
        """Line number and verdict of every video that is not OK."""
        return [(n, check) for n, check in self.checks if check.status != OK]

    def summary(self) -> str:
        """``checked N, unreadable U, too short S, kept K -> path``."""
        text = (f'checked {len(self.checks)}, unreadable '
                f'{self.count(UNREADABLE)}, too short '
                f'{self.count(TOO_SHORT)}, kept {len(self.kept_lines)}')
        return text + (f' -> {self.out}' if self.out else '')


def check_rawframes(frame_dir: str,
                    total_frames: int,
                    offset: int = 0,
                    min_frames: int = 1,
                    filename_tmpl: str = 'img_{:05}.jpg',
                    start_index: int = 1) -> VideoCheck:
    """Check a frame folder of a rawframe list, as ``RawFrameDecode``
    reads it.

    Every listed frame (``filename_tmpl.format(i)`` for ``i`` from
    ``offset + start_index``, ``total_frames`` of them) must exist; the
    first, middle and last must decode (OpenCV, as MMCV's default backend).

    Args:
        frame_dir (str): The folder of the frames.
        total_frames (int): Frames the list says the folder has.
        offset (int): The line's offset (lists with ``with_offset``).
        min_frames (int): Fewer frames make the entry ``TOO_SHORT``.
        filename_tmpl (str): The dataset's ``filename_tmpl``.
        start_index (int): The dataset's ``start_index`` (1 for MMAction2's
            frame extraction).

    Returns:
        VideoCheck: The verdict; ``path`` is ``frame_dir``.
    """
    import cv2
    fact = file_fact(frame_dir, 'dir')
    if fact:
        return VideoCheck(frame_dir, UNREADABLE, reason=fact)
    first = offset + start_index
    expected = [
        filename_tmpl.format(i) for i in range(first, first + total_frames)
    ]
    # One scandir gives every entry's type: a frame that is a named pipe
    # would block RawFrameDecode (the dataset refuses it as well).
    with os.scandir(frame_dir) as entries:
        present = {entry.name: entry.is_file() for entry in entries}
    missing = [name for name in expected if name not in present]
    if missing:
        return VideoCheck(
            frame_dir, UNREADABLE,
            reason=f'{len(missing)} of {total_frames} listed frames missing '
            f'(first: {missing[0]}); re-extract the frames, or fix '
            'total_frames in the list (or filename_tmpl / start_index)')
    special = [name for name in expected if not present[name]]
    if special:
        wrong = wrong_file_type(osp.join(frame_dir, special[0]))
        return VideoCheck(
            frame_dir, UNREADABLE,
            reason=f'frame {special[0]}: {wrong or "not a regular file"}')
    for index in _probe_frames(total_frames):
        path = osp.join(frame_dir, expected[index])
        fact = file_fact(path)
        if fact or cv2.imread(path) is None:
            fact = fact or 'cannot be decoded'
            return VideoCheck(
                frame_dir,
                UNREADABLE,
                reason=f'frame {expected[index]}: {fact}')
    if total_frames < min_frames:
        return VideoCheck(
            frame_dir, TOO_SHORT, total_frames,
            f'{total_frames} frames, fewer than min_frames={min_frames}')
    return VideoCheck(frame_dir, OK, total_frames)


def check_video_list(ann_file: str,
                     data_prefix: str = '',
                     min_frames: int = 1,
                     decoder: str = 'decord',
                     delimiter: str = ' ',
                     nproc: int = 1,
                     out: Optional[str] = None,
                     timeout: Optional[float] = 60) -> VideoListReport:
    """Check every video of a video list; optionally write a cleaned list.

    Only the path (first field) of each line is used; labels are copied as
    they are (the dataset checks them at load). Blank lines are dropped.

    Args:
        ann_file (str): Video list, ``path label ...`` per line.
        data_prefix (str): Directory the paths are relative to (the
            dataset's ``data_prefix=dict(video=...)``).
        min_frames (int): See :func:`check_video`.
        decoder (str): See :func:`check_video`.
        delimiter (str): Field delimiter of the list (as the dataset's).
        nproc (int): Worker processes to check with.
        out (str, optional): Write the lines of the OK videos here.
        timeout (float, optional): Seconds one video may take; a video that
            takes longer is ``UNREADABLE``. None or 0: no limit (and with
            ``nproc=1``, no worker process).

    Returns:
        VideoListReport: Verdicts, kept lines and ``out``.
    """
    if decoder not in DECODE_TRANSFORMS:
        raise ValueError(f'decoder={decoder!r} is not one of '
                         f'{sorted(DECODE_TRANSFORMS)}')
    entries = _non_blank_lines(ann_file)
    paths = [
        osp.join(data_prefix, split_fields(line, delimiter)[0])
        for _, line in entries
    ]
    check = partial(check_video, min_frames=min_frames, decoder=decoder)
    return _check_entries(entries, paths, check, nproc, timeout, out)


def check_rawframe_list(ann_file: str,
                        data_prefix: str = '',
                        min_frames: int = 1,
                        filename_tmpl: str = 'img_{:05}.jpg',
                        start_index: int = 1,
                        with_offset: bool = False,
                        nproc: int = 1,
                        out: Optional[str] = None,
                        timeout: Optional[float] = 60) -> VideoListReport:
    """Check every frame folder of a rawframe list; optionally write a
    cleaned list.

    Args:
        ann_file (str): Rawframe list, ``frame_dir total_frames label`` per
            line (``frame_dir offset total_frames label`` with
            ``with_offset``). Malformed lines raise ``AnnotationError``
            (as the dataset would), all of them at once.
        data_prefix (str): Directory the folders are relative to (the
            dataset's ``data_prefix=dict(img=...)``).
        min_frames (int): See :func:`check_rawframes`.
        filename_tmpl (str): See :func:`check_rawframes`.
        start_index (int): See :func:`check_rawframes`.
        with_offset (bool): Whether the lines have an offset column.
        nproc (int): Worker processes to check with.
        out (str, optional): Write the lines of the OK entries here.
        timeout (float, optional): Seconds one entry may take; see
            :func:`check_video_list`.

    Returns:
        VideoListReport: Verdicts, kept lines and ``out``.
    """
    parse_annotation_file(
        ann_file,
        parse_rawframe_line,
        fmt='frame_dir ' + ('offset ' if with_offset else '') +
        'total_frames label',
        with_offset=with_offset,
        allow_missing_labels=True)
    entries = _non_blank_lines(ann_file)
    infos = [
        parse_rawframe_line(
            line, with_offset=with_offset, allow_missing_labels=True,
            multi_class=True) for _, line in entries
    ]
    tasks = [(osp.join(data_prefix, info['frame_dir']), info['total_frames'],
              info.get('offset', 0)) for info in infos]
    check = partial(
        _check_rawframes_of,
        min_frames=min_frames,
        filename_tmpl=filename_tmpl,
        start_index=start_index)
    return _check_entries(entries, tasks, check, nproc, timeout, out,
                          path_of=lambda task: task[0])


def _check_rawframes_of(task: Tuple[str, int, int], **options) -> VideoCheck:
    frame_dir, total_frames, offset = task
    return check_rawframes(frame_dir, total_frames, offset, **options)


def _non_blank_lines(ann_file: str) -> List[Tuple[int, str]]:
    return [(lineno, line)
            for lineno, line in enumerate(read_annotation_lines(ann_file), 1)
            if line.strip()]


def _check_entries(entries: List[Tuple[int, str]],
                   tasks: Sequence[Any],
                   check: Callable[[Any], VideoCheck],
                   nproc: int,
                   timeout: Optional[float],
                   out: Optional[str],
                   path_of: Callable[[Any], str] = str) -> VideoListReport:
    """Run ``check`` on every task with a time limit; build the report and
    write the kept lines."""
    # mmengine's default progress file is the sys.stdout of import time;
    # pass today's so that redirecting stdout redirects the bar too.
    progress = ProgressBar(len(tasks), file=sys.stdout) if tasks else None
    outcomes = map_with_time_limit(
        check, tasks, nproc=nproc, timeout=timeout,
        on_result=progress.update if progress else None)
    report = VideoListReport(out=out)
    for (lineno, line), task, outcome in zip(entries, tasks, outcomes):
        if isinstance(outcome, WorkerFailure):
            outcome = VideoCheck(path_of(task), UNREADABLE,
                                 reason=outcome.reason)
        report.checks.append((lineno, outcome))
        if outcome.status == OK:
            report.kept_lines.append(line)
    if out:
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w', encoding='utf-8') as f:
            f.writelines(line + '\n' for line in report.kept_lines)
    return report


@dataclass(frozen=True)
class WorkerFailure:
    """A task whose worker process timed out or died.

    Attributes:
        reason (str): What happened, for the report.
    """
    reason: str


def _call(func: Callable, task: Any) -> Any:
    """``func(task)``, or a :class:`WorkerFailure` saying what it raised
    (so that one odd file does not end the check of the others)."""
    try:
        return func(task)
    except Exception as exc:
        return WorkerFailure(describe_failure(None, exc, 'checking'))


def map_with_time_limit(func: Callable[[Any], Any],
                        tasks: Sequence[Any],
                        nproc: int = 1,
                        timeout: Optional[float] = None,
                        on_result: Optional[Callable[[], None]] = None
                        ) -> List[Any]:
    """``[func(task) for task in tasks]`` in ``nproc`` worker processes
    (a ``pebble.ProcessPool``), each call limited to ``timeout`` seconds.

    A call that takes longer gets its worker killed and replaced; a worker
    that dies (e.g. a decoder's segmentation fault) is replaced too. Either
    way the task's result is a :class:`WorkerFailure` and the other tasks
    go on.

    Args:
        func (callable): Module-level function (or ``partial`` of one) of
            one task; it and the tasks must be picklable.
        tasks (Sequence): The tasks.
        nproc (int): Worker processes.
        timeout (float, optional): Seconds per call, counted from when a
            worker starts it. None or 0: no limit; with ``nproc=1`` then
            the calls run in this process.
        on_result (callable, optional): Called without arguments after each
            task, in task order (a progress bar's ``update``).

    Returns:
        list: Results (or ``WorkerFailure``) in task order.
    """
    if nproc < 1:
        raise ValueError(f'nproc={nproc} must be at least 1')
    results: List[Any] = []
    if not tasks:
        return results
    if not timeout and nproc == 1:
        for task in tasks:
            results.append(_call(func, task))
            if on_result:
                on_result()
        return results
    with ProcessPool(
            max_workers=min(nproc, len(tasks)),
            context=multiprocessing.get_context()) as pool:
        futures = [
            pool.schedule(_call, args=(func, task), timeout=timeout or None)
            for task in tasks
        ]
        for future in futures:
            try:
                result = future.result()
            except FutureTimeoutError:
                result = WorkerFailure(
                    f'timed out: checking took more than {timeout:g} s (the '
                    'decoder hangs on it: a damaged file or a stalled mount)')
            except ProcessExpired as exc:
                result = WorkerFailure(
                    f'the checking process died (exit code {exc.exitcode}), '
                    'e.g. the decoder crashed on this file')
            except Exception as exc:  # the pool's own trouble, e.g. pickling
                result = WorkerFailure(
                    describe_failure(None, exc, 'checking'))
            results.append(result)
            if on_result:
                on_result()
    return results
