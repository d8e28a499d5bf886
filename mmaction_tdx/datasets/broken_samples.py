# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Bookkeeping of broken samples, shared by all processes of a run.

A dataset that skips broken samples (see
:mod:`mmaction_tdx.datasets.robust_video_dataset`) runs in the main process
and in every dataloader worker, and workers are separate processes that may
be re-created each epoch. So the record of broken samples lives in a file:
:class:`BrokenSampleRecord` appends one JSON line per broken sample that was
hit (an *event*) and reads the lines the other processes wrote. From that
file every process knows

* whether a path was already reported (so each path is logged once per
  dataset and run, across workers and epochs),
* how many distinct broken paths the run has met so far (for the limit
  ``max_broken_fraction``), and
* how many events there were (so a hook can report a count per epoch).
"""
import contextlib
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Iterator, List, Optional, Tuple

try:  # POSIX only; elsewhere two workers may rarely log the same path twice
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

# How many broken paths an error message lists before "and N more".
NUM_PATHS_IN_ERROR = 5
# Transforms (and decoder names of check_videos) whose failure on an existing,
# non-empty file means the file is not a decodable video.
VIDEO_DECODING_STEPS = frozenset([
    'DecordInit', 'DecordDecode', 'OpenCVInit', 'OpenCVDecode', 'PyAVInit',
    'PyAVDecode', 'PIMSInit', 'PIMSDecode', 'decord', 'opencv'
])
# Exception messages (decoder output can be long) are cut to this length.
MAX_REASON_CHARS = 200


class BrokenDataError(RuntimeError):
    """Too many samples of a dataset are broken for the run to go on."""


class BrokenSampleRecord:
    """A JSON-lines file of broken samples, appended to by many processes.

    Each line is ``{"path": ..., "reason": ..., "pid": ...}`` for one time a
    broken sample was hit. Appends and reads hold an exclusive ``flock``
    (where available), so "is this path new?" and "append it" are one atomic
    step across processes.

    The object caches what it has read (distinct paths, number of events,
    byte offset) and afterwards reads only what was appended since. It holds
    no open file, so it can be pickled or forked into dataloader workers.

    Args:
        file (str): Path of the JSON-lines file. It and its directory are
            created on the first :meth:`add`.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self._offset = 0
        self._num_events = 0
        self._distinct: 'OrderedDict[str, str]' = OrderedDict()

    @property
    def num_events(self) -> int:
        """Broken-sample hits read so far (call :meth:`refresh` first)."""
        return self._num_events

    @property
    def distinct(self) -> 'OrderedDict[str, str]':
        """Distinct broken paths read so far, in order of discovery, each
        with the reason it was first recorded with."""
        return OrderedDict(self._distinct)

    def add(self, path: str, reason: str) -> bool:
        """Record one hit of a broken sample.

        Args:
            path (str): The sample's file or frame directory.
            reason (str): Why loading it failed.

        Returns:
            bool: True if no process had recorded ``path`` before, i.e. the
            caller should log it.
        """
        os.makedirs(osp.dirname(osp.abspath(self.file)), exist_ok=True)
        line = json.dumps(dict(path=path, reason=reason, pid=os.getpid()))
        with open(self.file, 'ab+') as f, _locked(f):
            torn = self._read_new_lines(f)
            is_new = path not in self._distinct
            # Start a fresh line after a line torn by a killed process.
            payload = (b'\n' if torn else b'') + line.encode('utf-8') + b'\n'
            f.write(payload)
            f.flush()
            self._offset += len(torn) + len(payload)
        self._count(path, reason)
        return is_new

    def refresh(self) -> 'BrokenSampleRecord':
        """Read what other processes appended since the last read."""
        if osp.exists(self.file):
            with open(self.file, 'ab+') as f, _locked(f):
                self._read_new_lines(f)
        return self

    def _read_new_lines(self, f) -> bytes:
        """Count the complete lines after ``self._offset``; return the
        trailing incomplete line (normally empty)."""
        f.seek(self._offset)
        data = f.read()
        end = data.rfind(b'\n') + 1
        for raw in data[:end].splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:  # torn by a process killed mid-write
                continue
            self._count(entry['path'], entry['reason'])
        self._offset += end
        return data[end:]

    def _count(self, path: str, reason: str) -> None:
        self._num_events += 1
        self._distinct.setdefault(path, reason)


@contextlib.contextmanager
def _locked(f) -> Iterator[None]:
    """Hold an exclusive lock on the open file ``f`` (no-op without
    ``fcntl``)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def describe_failure(path: Optional[str], exc: BaseException,
                     step: Optional[str] = None) -> str:
    """Say in one line why a sample could not be loaded.

    Facts about the file (missing, empty) come first because decoders report
    them in confusing ways (OpenCV: ``__len__() should return >= 0``).

    Args:
        path (str, optional): The sample's file or frame directory.
        exc (BaseException): What the loading raised.
        step (str, optional): Name of the transform that raised.

    Returns:
        str: e.g. ``'empty file (0 bytes); DecordInit raised RuntimeError'``
        or ``'not a decodable video (truncated, corrupt or not a video);
        DecordInit raised RuntimeError: Error reading a.mp4...'``.
    """
    raised = f'{step} raised {type(exc).__name__}' if step else \
        type(exc).__name__
    fact = file_fact(path) if path else None
    if fact:
        return f'{fact}; {raised}'
    if step in VIDEO_DECODING_STEPS:
        # Decoders say "Error reading N bytes" and the like; say it plainly.
        raised = f'not a decodable video (truncated, corrupt or not a ' \
            f'video); {raised}'
    message = ' '.join(str(exc).split())
    if len(message) > MAX_REASON_CHARS:
        message = message[:MAX_REASON_CHARS] + '...'
    return f'{raised}: {message}' if message else raised


def file_fact(path: str) -> Optional[str]:
    """What is wrong with ``path`` that the file system tells: ``'not
    found'``, ``'empty file (0 bytes)'``, or None."""
    if not osp.exists(path):
        return 'not found'
    if osp.isfile(path) and osp.getsize(path) == 0:
        return 'empty file (0 bytes)'
    return None


def fraction_exceeded(num_broken: int, num_samples: int,
                      max_fraction: float) -> bool:
    """Whether ``num_broken`` of ``num_samples`` is over ``max_fraction``.

    ``max_fraction=0`` means any broken sample stops the run; 1 means none
    does.
    """
    return num_broken > max_fraction * num_samples


def too_many_broken_message(broken: 'OrderedDict[str, str]',
                            num_samples: int, max_fraction: float,
                            dataset: str, record_file: str,
                            ann_file: Optional[str] = None,
                            data_prefix: Optional[str] = None,
                            check_options: str = '') -> str:
    """The text of the :class:`BrokenDataError` that stops a run.

    Args:
        broken (OrderedDict[str, str]): Distinct broken path -> reason, in
            order of discovery.
        num_samples (int): Length of the dataset.
        max_fraction (float): The dataset's ``max_broken_fraction``.
        dataset (str): How to name the dataset, e.g. its class and list.
        record_file (str): Where all broken samples are listed.
        ann_file (str, optional): The dataset's annotation file, for the
            suggested ``check_videos.py`` command.
        data_prefix (str, optional): The dataset's data prefix, likewise.
        check_options (str): More options of that command (rawframe
            lists: ``--rawframes --filename-tmpl ...``).

    Returns:
        str: Names the problem, the first paths with reasons, and the fixes.
    """
    shown: List[Tuple[str, str]] = list(broken.items())[:NUM_PATHS_IN_ERROR]
    lines = [
        f'{len(broken)} of {num_samples} samples '
        f'({len(broken) / max(num_samples, 1):.1%}) of {dataset} are broken, '
        f'more than max_broken_fraction={max_fraction:g} allows. '
        f'First broken samples:'
    ]
    lines += [f'  {path}: {reason}' for path, reason in shown]
    if len(broken) > len(shown):
        lines.append(f'  ... and {len(broken) - len(shown)} more')
    lines.append(f'All broken samples met so far are in {record_file}.')
    check_cmd = 'python tools/analysis/check_videos.py ' + (
        ann_file or 'ANN_FILE')
    if data_prefix:
        check_cmd += f' --data-prefix {data_prefix}'
    check_cmd += check_options
    check_cmd += ' --out CLEAN_LIST'
    lines.append(
        f'To fix: remove them from the annotation list (`{check_cmd}` '
        'writes a list without the unreadable entries; train on '
        'CLEAN_LIST), or '
        'raise `max_broken_fraction` in the dataset config to accept more. '
        'If every sample fails with the same reason, the pipeline config '
        'is more likely wrong than the data.')
    return '\n'.join(lines)
