# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Frame sources for windowed and live recognition.

A source yields RGB frames ``(H, W, 3)`` uint8 one at a time, in order,
and says what it knows of itself: frames per second and, when the container
tells, the number of frames. Two kinds:

* :class:`VideoFileSource`: a video file decoded with decord, the decoder
  of MMAction2's ``DecordInit``/``DecordDecode`` (so a window's frames are
  the very pixels ``recognize_video`` decodes). ``realtime=True`` paces it
  at the video's frame rate, as a camera would deliver it.
* :class:`CaptureSource`: a camera index or a stream URL (RTSP/HTTP/...),
  read with OpenCV, with a time limit on opening and on every frame.

:func:`open_source` picks one from what the user typed.
"""
import threading
import time
from typing import Iterator, Optional, Union

import numpy as np

from ..datasets.broken_samples import file_fact


class FrameSourceError(RuntimeError):
    """A source that cannot be opened or read (the message names it)."""


class VideoFileSource:
    """Frames of a video file, decoded once, in order.

    Args:
        path (str): Video file.
        realtime (bool): Deliver frames no faster than the video's frame
            rate (a file standing in for a live stream).
        chunk (int): Frames decoded per decord call.
    """

    def __init__(self, path: str, realtime: bool = False,
                 chunk: int = 32) -> None:
        # The datasets' own definition of an unreadable file (a named pipe
        # would block decord for ever).
        fact = file_fact(path)
        if fact == 'not found':
            raise FrameSourceError(f'Video {path} does not exist.')
        if fact is not None:
            raise FrameSourceError(
                f'Video {path}: {fact}; pass a video file, a camera index '
                'or a stream URL.')
        import decord
        try:
            self._reader = decord.VideoReader(path, num_threads=1)
        except Exception as err:  # decord raises its own DECORDError
            raise FrameSourceError(
                f'Cannot decode {path}: {err}. Check it with '
                f'`python tools/analysis/check_videos.py` or play it.'
            ) from None
        self.path = path
        self.num_frames: Optional[int] = len(self._reader)
        if not self.num_frames:
            raise FrameSourceError(f'Video {path} holds no frames.')
        self.fps = float(self._reader.get_avg_fps()) or 30.0
        self.realtime = realtime
        self.chunk = chunk

    def __iter__(self) -> Iterator[np.ndarray]:
        t0 = time.perf_counter()
        for start in range(0, self.num_frames, self.chunk):
            stop = min(start + self.chunk, self.num_frames)
            try:
                batch = self._reader.get_batch(list(range(start,
                                                          stop))).asnumpy()
            except Exception as err:
                raise FrameSourceError(
                    f'Decoding {self.path} failed at frames {start}-'
                    f'{stop - 1}: {err}') from None
            for offset, frame in enumerate(batch):
                if self.realtime:
                    due = t0 + (start + offset) / self.fps
                    time.sleep(max(0.0, due - time.perf_counter()))
                yield frame

    def __repr__(self) -> str:
        return f'VideoFileSource({self.path!r}, realtime={self.realtime})'


def _call_with_timeout(fn, timeout: float, what: str):
    """``fn()`` in a daemon thread; :class:`FrameSourceError` after
    ``timeout`` s (OpenCV's blocking calls cannot be interrupted)."""
    result = {}

    def run():
        try:
            result['value'] = fn()
        except Exception as err:  # re-raised in the caller's thread
            result['error'] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise FrameSourceError(f'{what} did not answer within {timeout:g} s.')
    if 'error' in result:
        raise FrameSourceError(f'{what} failed: {result["error"]}')
    return result['value']


class CaptureSource:
    """Frames of a camera or a network stream, read with OpenCV.

    Args:
        source (int | str): Camera index or URL.
        open_timeout (float): Seconds to wait for the source to open.
        read_timeout (float): Seconds to wait for each frame; a stream that
            stops delivering ends with :class:`FrameSourceError`.
        fps (float, optional): Frame rate to assume when the source does
            not report one.
    """

    num_frames: Optional[int] = None  # a live source has no known end

    def __init__(self, source: Union[int, str], open_timeout: float = 10.0,
                 read_timeout: float = 10.0,
                 fps: Optional[float] = None) -> None:
        import cv2
        self.source = source
        self.read_timeout = read_timeout
        what = f'Opening {source!r}'

        def open_capture():
            capture = cv2.VideoCapture(source)
            if not capture.isOpened():
                raise OSError('OpenCV could not open it (check the camera '
                              'index or the URL)')
            return capture

        self._capture = _call_with_timeout(open_capture, open_timeout, what)
        reported = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps or (reported if 0 < reported < 1000 else 30.0))

    def __iter__(self) -> Iterator[np.ndarray]:
        import cv2
        index = 0
        while True:
            ok, frame = _call_with_timeout(
                self._capture.read, self.read_timeout,
                f'Reading frame {index} of {self.source!r}')
            if not ok:
                if index == 0:
                    raise FrameSourceError(
                        f'{self.source!r} opened but delivered no frame.')
                return  # the end of the stream
            index += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._capture.release()


def open_source(source: Union[int, str],
                realtime: bool = False,
                open_timeout: float = 10.0):
    """A frame source for a file path, a camera index (``'0'`` or ``0``)
    or a URL (anything with ``://``)."""
    if isinstance(source, int) or (isinstance(source, str)
                                   and source.isdigit()):
        return CaptureSource(int(source), open_timeout=open_timeout)
    if '://' in source:
        return CaptureSource(source, open_timeout=open_timeout)
    return VideoFileSource(source, realtime=realtime)
