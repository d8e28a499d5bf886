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

Each check runs in a worker process with a time limit: a file that makes
the decoder hang (a stalled network mount, a damaged stream, a named pipe)
is reported as unreadable and its worker replaced, and a decoder that
crashes takes down only its worker; the other files are checked anyway.
"""
import multiprocessing
import os
import os.path as osp
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import wait
from typing import Any, Callable, List, Optional, Sequence, Tuple

from mmengine.utils import ProgressBar

from .annotation_checks import (
    parse_annotation_file,
    parse_rawframe_line,
    read_annotation_lines,
    split_fields,
)
from .broken_samples import describe_failure, file_fact

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


def probe_with_decord(path: str) -> int:
    """Decode the first, middle and last frame with decord.

    Returns:
        int: The number of frames. Raises if any probed frame fails.
    """
    import decord
    reader = decord.VideoReader(path, num_threads=1)
    num_frames = len(reader)
    if num_frames < 1:
        raise ValueError('the video has no frames')
    reader.get_batch(_probe_frames(num_frames)).asnumpy()
    return num_frames


def probe_with_opencv(path: str) -> int:
    """Decode the first, middle and last frame with OpenCV.

    Returns:
        int: The number of frames. Raises if any probed frame fails.
    """
    import cv2
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise ValueError('OpenCV cannot open the file')
        num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if num_frames < 1:
            raise ValueError(f'the video reports {num_frames} frames')
        for index in _probe_frames(num_frames):
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, _ = capture.read()
            # OpenCV's frame count may overshoot by one; MMAction2's
            # OpenCVDecode then uses the frame before the last, so do we.
            if not ok and index == num_frames - 1 and index > 0:
                capture.set(cv2.CAP_PROP_POS_FRAMES, index - 1)
                ok, _ = capture.read()
            if not ok:
                raise ValueError(
                    f'frame {index} of {num_frames} cannot be decoded')
        return num_frames
    finally:
        capture.release()


PROBES = dict(decord=probe_with_decord, opencv=probe_with_opencv)


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
        num_frames = PROBES[decoder](path)
    except Exception as exc:
        return VideoCheck(
            path, UNREADABLE, reason=describe_failure(path, exc, decoder))
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
    if not osp.isdir(frame_dir):
        return VideoCheck(
            frame_dir, UNREADABLE,
            reason=file_fact(frame_dir) or 'not a directory')
    first = offset + start_index
    expected = [
        filename_tmpl.format(i) for i in range(first, first + total_frames)
    ]
    present = set(os.listdir(frame_dir))
    missing = [name for name in expected if name not in present]
    if missing:
        return VideoCheck(
            frame_dir, UNREADABLE,
            reason=f'{len(missing)} of {total_frames} listed frames missing '
            f'(first: {missing[0]}); re-extract the frames, or fix '
            'total_frames in the list (or filename_tmpl / start_index)')
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
    if decoder not in PROBES:
        raise ValueError(f'decoder={decoder!r} is not one of '
                         f'{sorted(PROBES)}')
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


def _serve(conn, func: Callable) -> None:
    """Worker loop: receive a task, send ``func(task)``; None stops."""
    while True:
        task = conn.recv()
        if task is None:
            return
        conn.send(_call(func, task))


class _Worker:
    """A worker process with its own pipe (so killing it cannot leave a
    shared queue locked) and the task it is running."""

    def __init__(self, context, func: Callable) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, func), daemon=True)
        self.process.start()
        child.close()
        self.task: Optional[int] = None
        self.deadline = float('inf')

    def give(self, index: int, task: Any, timeout: Optional[float]) -> None:
        self.conn.send(task)
        self.task = index
        self.deadline = time.monotonic() + timeout if timeout else \
            float('inf')

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                kill = True
        if kill:
            self.process.kill()
        self.process.join(timeout=None if kill else 5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def map_with_time_limit(func: Callable[[Any], Any],
                        tasks: Sequence[Any],
                        nproc: int = 1,
                        timeout: Optional[float] = None,
                        on_result: Optional[Callable[[], None]] = None
                        ) -> List[Any]:
    """``[func(task) for task in tasks]`` in ``nproc`` worker processes,
    each call limited to ``timeout`` seconds.

    A call that takes longer gets its worker killed and replaced; a worker
    that dies (e.g. a decoder's segmentation fault) is replaced too. Either
    way the task's result is a :class:`WorkerFailure` and the other tasks
    go on.

    Args:
        func (callable): Module-level function (or ``partial`` of one) of
            one task; it and the tasks must be picklable.
        tasks (Sequence): The tasks.
        nproc (int): Worker processes.
        timeout (float, optional): Seconds per call. None or 0: no limit;
            with ``nproc=1`` then the calls run in this process.
        on_result (callable, optional): Called without arguments after each
            task (a progress bar's ``update``).

    Returns:
        list: Results (or ``WorkerFailure``) in task order.
    """
    if nproc < 1:
        raise ValueError(f'nproc={nproc} must be at least 1')
    if not timeout and nproc == 1:
        results = []
        for task in tasks:
            results.append(_call(func, task))
            if on_result:
                on_result()
        return results
    context = multiprocessing.get_context()
    results: List[Any] = [None] * len(tasks)
    todo = list(range(len(tasks)))[::-1]  # pop() from the end: file order
    workers = [_Worker(context, func) for _ in range(min(nproc, len(tasks)))]

    def assign(worker: _Worker) -> None:
        if todo:
            index = todo.pop()
            worker.give(index, tasks[index], timeout)
        else:
            worker.task = None

    def finish(index: int, result: Any) -> None:
        results[index] = result
        if on_result:
            on_result()

    try:
        for worker in workers:
            assign(worker)
        while True:
            busy = [worker for worker in workers if worker.task is not None]
            if not busy:
                break
            now = time.monotonic()
            next_deadline = min(worker.deadline for worker in busy)
            wait_for = None if next_deadline == float('inf') else max(
                next_deadline - now, 0)
            ready = wait([worker.conn for worker in busy], timeout=wait_for)
            for i, worker in enumerate(workers):
                if worker.task is None:
                    continue
                if worker.conn in ready:
                    try:
                        result = worker.conn.recv()
                    except EOFError:  # the worker died mid-task
                        worker.process.join()
                        result = WorkerFailure(
                            'the checking process died (exit code '
                            f'{worker.process.exitcode}), e.g. the decoder '
                            'crashed on this file')
                        finish(worker.task, result)
                        worker.stop(kill=True)
                        workers[i] = worker = _Worker(context, func)
                    else:
                        finish(worker.task, result)
                    assign(worker)
                elif time.monotonic() >= worker.deadline:
                    finish(
                        worker.task,
                        WorkerFailure(
                            f'timed out: checking took more than {timeout:g} '
                            's (the decoder hangs on it: a damaged file, a '
                            'stalled mount or not a regular file)'))
                    worker.stop(kill=True)
                    workers[i] = worker = _Worker(context, func)
                    assign(worker)
    finally:
        for worker in workers:
            worker.stop(kill=worker.task is not None)
    return results
