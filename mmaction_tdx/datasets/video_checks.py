# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Pre-flight check of the videos of an annotation list.

The logic of ``tools/analysis/check_videos.py``: open every video of a
video list, count its frames, decode its first, middle and last frame, and
write a cleaned list without the unreadable ones (and, with ``min_frames``,
without the too short ones). Unlike MMAction2's
``tools/analysis_tools/check_videos.py`` it needs no config, checks frame
counts, keeps the annotation lines as they are and reports why each video
was dropped.
"""
import os
import os.path as osp
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import List, Optional, Tuple

from mmengine.utils import track_parallel_progress, track_progress

from .annotation_checks import read_annotation_lines, split_fields
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


def check_video_list(ann_file: str,
                     data_prefix: str = '',
                     min_frames: int = 1,
                     decoder: str = 'decord',
                     delimiter: str = ' ',
                     nproc: int = 1,
                     out: Optional[str] = None) -> VideoListReport:
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
        nproc (int): Processes to check with.
        out (str, optional): Write the lines of the OK videos here.

    Returns:
        VideoListReport: Verdicts, kept lines and ``out``.
    """
    if decoder not in PROBES:
        raise ValueError(f'decoder={decoder!r} is not one of '
                         f'{sorted(PROBES)}')
    lines = read_annotation_lines(ann_file)
    entries = [(lineno, line) for lineno, line in enumerate(lines, 1)
               if line.strip()]
    paths = [
        osp.join(data_prefix, split_fields(line, delimiter)[0])
        for _, line in entries
    ]
    check = partial(check_video, min_frames=min_frames, decoder=decoder)
    # mmengine's default progress file is the sys.stdout of import time;
    # pass today's so that redirecting stdout redirects the bar too.
    if not paths:
        checks = []
    elif nproc > 1:
        checks = track_parallel_progress(
            check, paths, nproc=nproc, file=sys.stdout)
    else:
        checks = track_progress(check, paths, file=sys.stdout)
    report = VideoListReport(out=out)
    for (lineno, line), result in zip(entries, checks):
        report.checks.append((lineno, result))
        if result.status == OK:
            report.kept_lines.append(line)
    if out:
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w', encoding='utf-8') as f:
            f.writelines(line + '\n' for line in report.kept_lines)
    return report
