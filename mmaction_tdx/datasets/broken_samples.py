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
import re
import stat
from collections import Counter, OrderedDict
from typing import Iterator, List, Optional, Sequence, Tuple

try:  # POSIX only; elsewhere two workers may rarely log the same path twice
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

# How many broken paths an error message lists before "and N more".
NUM_PATHS_IN_ERROR = 5
# Transforms whose failure on an existing, non-empty regular file means the
# file is not a decodable video (check_videos.py runs the same transforms).
VIDEO_DECODING_STEPS = frozenset([
    'DecordInit', 'DecordDecode', 'OpenCVInit', 'OpenCVDecode', 'PyAVInit',
    'PyAVDecode', 'PIMSInit', 'PIMSDecode'
])
# Exception messages (decoder output can be long) are cut to this length.
MAX_REASON_CHARS = 200


class BrokenDataError(RuntimeError):
    """Too many samples of a dataset are broken for the run to go on."""


class BrokenPipelineError(BrokenDataError):
    """Samples fail because of the pipeline (or the dataset's paths), not
    because of their files: every sample tried fails the same way."""


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
                     step: Optional[str] = None, kind: str = 'file') -> str:
    """Say in one line why a sample could not be loaded.

    Facts about the file (missing, empty, not a regular file) come first
    because decoders report them in confusing ways (OpenCV: ``__len__()
    should return >= 0``).

    Args:
        path (str, optional): The sample's file or frame directory.
        exc (BaseException): What the loading raised.
        step (str, optional): Name of the transform that raised.
        kind (str): What ``path`` should be: ``'file'`` (a video) or
            ``'dir'`` (a frame folder). See :func:`file_fact`.

    Returns:
        str: e.g. ``'empty file (0 bytes); DecordInit raised RuntimeError'``
        or ``'not a decodable video (truncated, corrupt or not a video);
        DecordInit raised RuntimeError: Error reading a.mp4...'``.
    """
    raised = f'{step} raised {type(exc).__name__}' if step else \
        type(exc).__name__
    fact = file_fact(path, kind) if path else None
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


# File types other than regular files and directories, by their stat test.
_SPECIAL_FILE_TYPES = (
    (stat.S_ISFIFO, 'a named pipe'),
    (stat.S_ISSOCK, 'a socket'),
    (stat.S_ISCHR, 'a character device'),
    (stat.S_ISBLK, 'a block device'),
    (stat.S_ISDIR, 'a directory'),
)


def wrong_file_type(path: str, kind: str = 'file') -> Optional[str]:
    """Why ``path`` is not the kind of file a sample needs, or None.

    Checked before a decoder opens a file: reading a named pipe (or a
    character device such as a terminal) blocks until someone writes to
    it, so a decoder would hang the run for ever. A path that does not
    exist (or is not on the local disk) returns None: opening it fails
    promptly and says so.

    Args:
        path (str): The sample's file or frame directory.
        kind (str): ``'file'``: a regular file (after symlinks) is
            needed; ``'dir'``: a directory is.

    Returns:
        str | None: e.g. ``'not a regular file (a named pipe)'``.
    """
    if kind not in ('file', 'dir'):
        raise ValueError(f"kind={kind!r} must be 'file' or 'dir'")
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, remote URL, bad name
        return None
    if kind == 'dir':
        return None if stat.S_ISDIR(mode) else 'not a directory'
    if stat.S_ISREG(mode):
        return None
    what = next((name for test, name in _SPECIAL_FILE_TYPES if test(mode)),
                'a special file')
    return f'not a regular file ({what})'


def file_fact(path: str, kind: str = 'file') -> Optional[str]:
    """What is wrong with ``path`` that the file system tells: ``'not
    found'``, ``'not a regular file (a named pipe)'`` (see
    :func:`wrong_file_type`), ``'empty file (0 bytes)'``, or None.

    Args:
        path (str): The sample's file or frame directory.
        kind (str): ``'file'`` or ``'dir'``, what ``path`` should be.
    """
    if not osp.exists(path):
        return 'not found'
    wrong = wrong_file_type(path, kind)
    if wrong:
        return wrong
    if kind == 'file' and osp.getsize(path) == 0:
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


# How many samples, spread over the list, a dataset tries to load when it is
# about to stop, to tell a wrong pipeline from broken files.
NUM_SAMPLES_TO_DIAGNOSE = 5


def failure_signature(path: Optional[str], reason: str) -> str:
    """``reason`` without what differs from one sample to the next (its
    path and file name, numbers such as frame counts), so that the same
    failure on two samples has the same signature."""
    text = reason
    if path:
        text = text.replace(path, '<path>')
        if osp.basename(path):
            text = text.replace(osp.basename(path), '<file>')
    return re.sub(r'\d+', 'N', text)


def common_failure(failures: Sequence[Tuple[str, str]],
                   num_tried: int) -> Optional[Tuple[str, str, int]]:
    """The failure of most samples tried, if it is the pipeline's.

    Broken files fail here and there, each its own way; a wrong pipeline
    setting (or a wrong ``data_prefix``) fails every sample the same way.
    So the verdict is "pipeline" when no sample tried loaded and one
    signature (:func:`failure_signature`) covers at least 2 and more than
    half of them.

    Args:
        failures (Sequence[tuple[str, str]]): ``(path, reason)`` of each
            sample tried that failed.
        num_tried (int): How many samples were tried.

    Returns:
        tuple | None: ``(path, reason, count)`` of the first sample with the
        common failure and how many share it, or None (the data's fault).
    """
    if not failures or len(failures) < num_tried:
        return None  # some sample loaded: the pipeline can work
    counts = Counter(failure_signature(*failure) for failure in failures)
    signature, count = counts.most_common(1)[0]
    if count < 2 or 2 * count <= num_tried:
        return None
    path, reason = next(failure for failure in failures
                        if failure_signature(*failure) == signature)
    return path, reason, count


def pipeline_failure_message(path: str, reason: str, count: int,
                             num_tried: int, dataset: str,
                             data_prefix: Optional[str] = None,
                             record_file: Optional[str] = None) -> str:
    """The text of the :class:`BrokenPipelineError` for
    :func:`common_failure`'s verdict: what is wrong (the transform and its
    error, or the paths) and the fix.

    Args:
        path (str): A sample that failed that way.
        reason (str): Its reason (:func:`describe_failure`).
        count (int): Samples tried that failed that way.
        num_tried (int): Samples tried (spread over the list).
        dataset (str): How to name the dataset, e.g. its class and list.
        data_prefix (str, optional): The dataset's data prefix.
        record_file (str, optional): Where the broken samples are listed.
    """
    tried = (f'none of {num_tried} samples tried (spread over the list) '
             f'loads; {count} fail')
    match = re.search(r'(\w+) raised (\w+)', reason)
    step = match.group(1) if match else None
    if reason.startswith('not found'):
        lines = [
            f'The paths of {dataset} are wrong, not the videos: {tried} '
            f'because the file does not exist, e.g. {path}.',
            f'Fix `data_prefix` (now {data_prefix!r}) or `data_root` in the '
            'dataset config: each path of the list is joined to it.'
        ]
    elif step in VIDEO_DECODING_STEPS or step is None:
        lines = [
            f'The decoder of {dataset} reads none of its videos: {tried} '
            f'with the same error: {reason} (e.g. {path}).',
            'If the files play elsewhere, the pipeline decodes them wrongly: '
            'use the decoder the files need (DecordInit/DecordDecode, '
            'OpenCVInit/OpenCVDecode, PyAVInit/PyAVDecode) or check its '
            'settings. Otherwise the whole list is unreadable: check it with '
            'tools/analysis/check_videos.py.'
        ]
    else:
        lines = [
            f'The pipeline of {dataset} is wrong, not the videos: {tried} '
            f'in {step} with the same error: {reason} (e.g. {path}).',
            f'Fix the settings of {step} in the pipeline of the dataset '
            'config (e.g. a crop size that does not fit the frames the '
            'transforms before it make, or options it does not accept) and '
            'start again. tools/analysis/check_videos.py checks files, not '
            'pipelines: it would not find this.'
        ]
    if record_file:
        lines.append(f'The failures met so far are listed in {record_file}.')
    return '\n'.join(lines)
