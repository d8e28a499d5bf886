# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""MMEngine's ``CheckpointHook`` that neither deletes what it does not own
nor loses the last resumable checkpoint.

Upstream (mmengine 0.10.7) :class:`~mmengine.hooks.CheckpointHook`

* deletes, when a run resumes, the paths the resumed checkpoint's message
  hub names: ``best_ckpt`` (any file or directory, removed at the next new
  best) and ``keep_ckpt_ids`` (any value, formatted into a path). A file
  that loads weights-only can name any path; and resuming from a copy of a
  colleague's ``epoch_N.pth`` deletes their best checkpoint;
* deletes the oldest kept checkpoint *before* writing the new one, writes
  files in place, and re-writes ``epoch_N.pth`` after a new best: with
  ``max_keep_ckpts=1``, a SIGKILL or a full disk at those points leaves
  ``last_checkpoint`` naming a deleted or truncated file, and only
  ``best_*.pth`` (no optimizer state) to resume from.

:class:`SafeCheckpointHook`, the ``checkpoint`` default hook of
``configs/_base_/default_runtime.py``, takes the same arguments and

* trusts paths from a resumed message hub only inside its own checkpoint
  directory (``out_dir``, the work dir by default): ``best_ckpt*`` must
  name a ``best_*`` file directly in it, ``keep_ckpt_ids`` must be step
  numbers; anything else is dropped with a warning and never deleted;
* writes every checkpoint (and ``last_checkpoint``) atomically: to a
  temporary file in the same directory, ``fsync``, ``os.replace``, then
  ``fsync`` of the directory. A file with the final name is always
  complete;
* removes old checkpoints (the oldest kept one, the previous best) only
  after the new one is written and ``last_checkpoint`` names it, which is
  updated last. Temporary files of an interrupted save are removed at the
  next start.

At every point of a save, ``last_checkpoint`` names a complete checkpoint
with its optimizer state (or none exists yet). A save that fails (e.g. the
disk is full) raises, naming the file and the checkpoint that is still
there to resume from.
"""
import contextlib
import errno
import os
import os.path as osp
import re
import uuid
from collections import deque
from typing import Iterable, List, Optional

from mmaction.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

__all__ = ['AtomicLocalBackend', 'SafeCheckpointHook', 'atomic_write']

# Temporary files of :func:`atomic_write`: ``.<name>.<32 hex>.tmp``.
TEMP_FILE = re.compile(r'^\..+\.[0-9a-f]{32}\.tmp$')
BACKEND_NAME = 'mmaction_tdx_atomic_local'


def _fsync_dir(directory: str) -> None:
    # The rename is durable once the directory entry is (POSIX).
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is, at every moment,
    either its old content or all of ``data``.

    The data goes to a temporary file in the same directory (same file
    system, so the rename is atomic), is flushed to disk, and replaces
    ``path`` with ``os.replace``. If anything fails, the temporary file is
    removed and ``path`` is untouched.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temp = osp.join(directory,
                    f'.{osp.basename(path)}.{uuid.uuid4().hex}.tmp')
    try:
        # Mode 0o666 less the umask, as open() gives the final file.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, 'wb') as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise
    _fsync_dir(directory)


@register_backend(BACKEND_NAME)
class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend whose ``put`` is :func:`atomic_write`
    (``runner.save_checkpoint`` writes through ``put``)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(os.fspath(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(os.fspath(filepath), obj.encode(encoding))


class _DeferredRemovals:
    """The hook's file backend, whose ``remove`` and ``rmtree`` only queue
    paths inside the checkpoint directory (others are refused with a
    warning); :meth:`flush` removes them once the new files are safe."""

    def __init__(self, backend, root: str, logger) -> None:
        self._backend, self._root, self._logger = backend, root, logger
        self.queued: List[str] = []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def remove(self, path) -> None:
        self._queue(path)

    def rmtree(self, path) -> None:
        self._queue(path)

    def _queue(self, path) -> None:
        if not _inside(os.fspath(path), self._root):
            self._logger.warning(
                f'Not removing {path}: it is not a checkpoint file in this '
                f"run's checkpoint directory {self._root}.")
            return
        self.queued.append(os.fspath(path))

    def flush(self, keep: Iterable[Optional[str]] = ()) -> None:
        """Remove the queued files, except those in ``keep`` (the
        checkpoints in use, which a new save may have written under a
        name that was queued)."""
        queued, self.queued = self.queued, []
        keep = {osp.abspath(path) for path in keep if path}
        for path in queued:
            if osp.abspath(path) not in keep and self._backend.isfile(path):
                self._backend.remove(path)


def _remove_stale_temp_files(directory: str) -> None:
    # Left by a save that was killed; ours by their name pattern.
    if not osp.isdir(directory):
        return
    for name in os.listdir(directory):
        if TEMP_FILE.match(name):
            with contextlib.suppress(OSError):
                os.remove(osp.join(directory, name))


def _inside(path: str, root: str) -> bool:
    """Whether ``path`` is a file directly in the directory ``root``
    (where the hook writes), not the directory itself nor anything
    reached through ``..`` or a link to another directory."""
    parent, name = osp.split(osp.abspath(path))
    return bool(name) and name not in ('.', '..') and osp.realpath(
        parent) == osp.realpath(root)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) with atomic saves, removals only
    after a successful save, and resume-time paths trusted only inside the
    checkpoint directory. See the module's documentation."""

    def before_train(self, runner) -> None:
        info = runner.message_hub.runtime_info
        resumed = {
            key: info.pop(key)
            for key in list(info)
            if key == 'keep_ckpt_ids' or key.startswith('best_ckpt')
        }
        # Atomic writes where the files are local (a URI such as s3://
        # keeps its own backend).
        local = self.file_client_args is None and (
            self.backend_args is None
            or self.backend_args.get('backend') == BACKEND_NAME) and (
                self.out_dir is None or '://' not in str(self.out_dir))
        if local:
            self.backend_args = dict(backend=BACKEND_NAME)
        super().before_train(runner)
        self.file_backend = _DeferredRemovals(self.file_backend,
                                              str(self.out_dir),
                                              runner.logger)
        if local and is_main_process():
            for directory in {runner.work_dir, self.out_dir}:
                _remove_stale_temp_files(directory)
        self._restore_trusted(runner, resumed)

    def _restore_trusted(self, runner, resumed: dict) -> None:
        info = runner.message_hub.runtime_info
        for key, path in resumed.items():
            if key == 'keep_ckpt_ids':
                continue
            indicator = key[len('best_ckpt_'):] if key != 'best_ckpt' \
                else None
            trusted = isinstance(path, str) and _inside(
                path, self.out_dir) and osp.basename(path).startswith(
                    'best_')
            if not trusted:
                runner.logger.warning(
                    f'The resumed checkpoint names {path!r} as its best '
                    f'checkpoint ({key}); it is not a best_* file in this '
                    f"run's checkpoint directory {self.out_dir}, so it is "
                    'ignored (and never deleted).')
                continue
            info[key] = path
            if self.save_best is None:
                continue
            if indicator is None and len(self.key_indicators) == 1:
                self.best_ckpt_path = path
            elif indicator in getattr(self, 'best_ckpt_path_dict', {}):
                self.best_ckpt_path_dict[indicator] = path
        if self.max_keep_ckpts <= 0 or 'keep_ckpt_ids' not in resumed:
            return
        ids = resumed['keep_ckpt_ids']
        steps = [s for s in ids if type(s) is int and s >= 0] \
            if isinstance(ids, (list, tuple)) else []
        if not isinstance(ids, (list, tuple)) or len(steps) != len(ids):
            runner.logger.warning(
                f'The resumed checkpoint keeps {ids!r:.200} as its kept '
                'checkpoints (keep_ckpt_ids); only step numbers are used, '
                'the rest is ignored (and never deleted).')
        while len(steps) > self.max_keep_ckpts:
            self.file_backend.remove(self._path_of(steps.pop(0)))
        self.keep_ckpt_ids = deque(steps, self.max_keep_ckpts)
        info['keep_ckpt_ids'] = list(steps)
        self._flush_removals()

    def _flush_removals(self) -> None:
        if not is_main_process():
            self.file_backend.queued.clear()
            return
        in_use = [self.last_ckpt, getattr(self, 'best_ckpt_path', None)]
        in_use += list(getattr(self, 'best_ckpt_path_dict', {}).values())
        in_use += [
            self._path_of(step)
            for step in getattr(self, 'keep_ckpt_ids', ())
        ]
        self.file_backend.flush(keep=in_use)

    def _path_of(self, step: int) -> str:
        return self.file_backend.join_path(self.out_dir,
                                           self.filename_tmpl.format(step))

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        # As CheckpointHook's, but the oldest kept checkpoint is removed
        # after the new one is saved and `last_checkpoint` names it.
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                self.file_backend.remove(
                    self._path_of(self.keep_ckpt_ids.popleft()))
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        previous = self.last_ckpt
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        try:
            runner.save_checkpoint(
                self.out_dir,
                ckpt_filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
            if not is_main_process():
                self.file_backend.queued.clear()
                return
            atomic_write(
                osp.join(runner.work_dir, 'last_checkpoint'),
                str(self.last_ckpt).encode())
        except OSError as err:
            self.file_backend.queued.clear()
            raise self._save_failed(err, ckpt_filename, previous) from err
        self._flush_removals()

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # The previous best is queued by CheckpointHook's method and
        # removed here, after the new best (and the re-saved checkpoint
        # holding its name) are written.
        try:
            super()._save_best_checkpoint(runner, metrics)
        except OSError as err:
            self.file_backend.queued.clear()
            if getattr(err, 'mmaction_tdx_reported', False):
                raise
            raise self._save_failed(err, 'the best checkpoint',
                                    self.last_ckpt) from err
        self._flush_removals()

    def _save_failed(self, err: OSError, what: str,
                     previous: Optional[str]) -> OSError:
        reason = 'the disk is full' if err.errno in (
            errno.ENOSPC, errno.EDQUOT) else str(err)
        still = (f'{previous} is still there to resume from'
                 if previous else 'no earlier checkpoint exists')
        failed = OSError(
            err.errno, f'Saving {what} in {self.out_dir} failed: {reason}. '
            f'Nothing was removed: {still} (last_checkpoint names it). Free '
            'space or set another work_dir, then resume.')
        failed.mmaction_tdx_reported = True
        return failed
