# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""MMEngine loads every checkpoint with ``torch.load(weights_only=True)``.

Upstream defect (mmengine 0.10.7, every torch version): MMEngine's
checkpoint loaders call ``torch.load`` without ``weights_only``, and its
URL loader (``http(s)://``, and through it ``open-mmlab://``, ``mmcls://``
and ``torchvision://``) calls ``torch.hub.load_state_dict_from_url``,
which unpickles with ``weights_only=False`` and skips the hash check. A
checkpoint, or a file planted in the download cache
(``$TORCH_HOME/hub/checkpoints``), can run any code on load. And with
torch >= 2.6 (``weights_only=True`` by default) MMEngine's own checkpoints
fail in ``test``, ``--resume`` and ``load_from``, because they hold the
message hub's ``HistoryBuffer`` objects (numpy arrays and scalars
inside).

The fix routes MMEngine's loaders through
:func:`mmaction_tdx.compat.safe_checkpoint.load_checkpoint_file`: local
files (``load_from``, ``--resume``, ``tools/test.py``, ``mim test``,
``init_recognizer``), URLs (``load_from_http``, the one function every
URL scheme of MMEngine calls, and MMEngine's ``load_url``), ``open-mmlab://``
files under ``$MMENGINE_HOME``, ``s3://`` / ``petrel://`` and ``pavi://``.
Each load passes ``weights_only=True`` explicitly, allows what MMEngine's
checkpoints hold only during the call and only through checking shims
(numeric numpy data rebuilt from bytes, ``HistoryBuffer`` data validated,
MMEngine's own statistics methods, ``collections.Counter``), checks a URL
file against the SHA-256 prefix in its name (``name-<hash>.pth``), also
when it comes from the cache, and reports a refused object
(:class:`~.safe_checkpoint.UnsafeCheckpointError`) or an unreadable
file (:class:`~.safe_checkpoint.CheckpointFileError`: empty, truncated,
corrupt, too large, another format, a hash mismatch) naming the file.
Torch's process-wide list of safe globals is left as it is, also while
our loads run in other threads: a user's own ``torch.load`` behaves as
plain torch's. Downloads fail after ``$MMACTION_TDX_DOWNLOAD_TIMEOUT``
seconds (default 60) without data from the server, naming the URL.

With a torch that has no scoped allowlist
(``torch.serialization.safe_globals``, torch < 2.5) the fix stands aside;
set ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` there.
"""
import os
import os.path as osp
from tempfile import TemporaryDirectory
from typing import Any, List

import torch

from .safe_checkpoint import (
    CheckpointFileError,
    UnsafeCheckpointError,
    is_weights_only_refusal,
    load_checkpoint_file,
    load_url,
    mmengine_globals,
    quote,
    refusal_details,
    refusal_message,
)

__all__ = [
    'CheckpointFileError', 'UnsafeCheckpointError', 'is_weights_only_refusal',
    'load_from_ceph', 'load_from_http', 'load_from_local',
    'load_from_openmmlab', 'load_from_pavi', 'load_url', 'refusal_details',
    'refusal_message', 'safe_types'
]


def safe_types() -> List[Any]:
    """``(shim, pickled name)`` pairs that our loads allow (for the call
    only; see :func:`~mmaction_tdx.compat.safe_checkpoint.allowed_globals`).
    """
    return mmengine_globals()


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """MMEngine's loader of local files (scheme ``''``), made safe.

    Raises:
        FileNotFoundError: if ``filename`` is not a file.
        UnsafeCheckpointError: if the checkpoint holds an object that is
            not allowed; it is not created.
        CheckpointFileError: if the file cannot be read.
    """
    return load_checkpoint_file(filename, map_location)


def load_from_http(filename: str,
                   map_location: Any = None,
                   model_dir: Any = None,
                   progress: bool = os.isatty(0)) -> Any:
    """MMEngine's ``http://`` / ``https://`` loader, made safe: download
    to torch's hub cache (rank 0 first), check the hash in the file name,
    load with :func:`load_checkpoint_file`.

    MMEngine's ``open-mmlab://``, ``mmcls://`` and ``torchvision://``
    loaders call this function by its module-level name, so they are
    covered too.
    """
    from mmengine.dist import get_dist_info
    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = load_url(
            filename, model_dir=model_dir, map_location=map_location,
            progress=progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = load_url(
                filename, model_dir=model_dir, map_location=map_location,
                progress=progress)
    return checkpoint


def load_from_openmmlab(filename: str, map_location: Any = None) -> Any:
    """MMEngine's ``open-mmlab://`` loader, made safe: names resolved with
    MMEngine's tables; URLs through :func:`load_from_http`, files under
    ``$MMENGINE_HOME`` through :func:`load_checkpoint_file`."""
    from mmengine.logging import print_log
    from mmengine.runner import checkpoint as mme
    prefix = ('open-mmlab://' if filename.startswith('open-mmlab://') else
              'openmmlab://')
    model_name = filename[len(prefix):]
    deprecated = mme.get_deprecated_model_names()
    if model_name in deprecated:
        print_log(
            f'{prefix}{model_name} is deprecated in favor of '
            f'{prefix}{deprecated[model_name]}',
            logger='current', level=30)
        model_name = deprecated[model_name]
    model_urls = mme.get_external_models()
    if model_name not in model_urls:
        raise KeyError(f'{quote(filename)}: no model {model_name!r} in '
                       "MMEngine's open-mmlab table (mmengine/hub/"
                       'openmmlab.json or $MMENGINE_HOME/open_mmlab.json).')
    model_url = model_urls[model_name]
    if model_url.startswith(('http://', 'https://')):
        return load_from_http(model_url, map_location=map_location)
    return load_checkpoint_file(
        osp.join(mme._get_mmengine_home(), model_url), map_location)


def load_from_ceph(filename: str,
                   map_location: Any = None,
                   backend: str = 'petrel') -> Any:
    """MMEngine's ``s3://`` / ``petrel://`` loader, made safe."""
    from mmengine.fileio import get_file_backend
    file_backend = get_file_backend(
        filename, backend_args={'backend': backend})
    return load_checkpoint_file(
        file_backend.get(filename), map_location, name=filename)


def load_from_pavi(filename: str, map_location: Any = None) -> Any:
    """MMEngine's ``pavi://`` loader, made safe."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError(
            'Please install pavi to load checkpoint from modelcloud.') \
            from None
    model = modelcloud.get(filename[len('pavi://'):])
    with TemporaryDirectory() as tmp_dir:
        downloaded = osp.join(tmp_dir, model.name)
        model.download(downloaded)
        return load_checkpoint_file(downloaded, map_location, name=filename)


# prefixes -> our loader, as MMEngine registers them.
SCHEMES = (
    ('', load_from_local),
    (('http://', 'https://'), load_from_http),
    (('open-mmlab://', 'openmmlab://'), load_from_openmmlab),
    ([r'(\S+\:)?s3://', r'(\S+\:)?petrel://'], load_from_ceph),
    ('pavi://', load_from_pavi),
)


def is_needed() -> bool:
    """Whether this torch can scope an allowlist to one load (>= 2.5).
    MMEngine 0.10.x loads URLs with ``weights_only=False`` on every torch,
    so the fix is needed wherever it can work."""
    return hasattr(torch.serialization, 'safe_globals')


_APPLIED = False


def apply() -> bool:
    """Route MMEngine's loaders through ours (idempotent).

    Returns:
        bool: True if MMEngine's loaders are ours after the call.
    """
    global _APPLIED
    if _APPLIED:
        return True
    if not is_needed():
        return False
    from mmengine.runner import checkpoint as mme
    from mmengine.utils import dl_utils
    for prefixes, loader in SCHEMES:
        mme.CheckpointLoader.register_scheme(
            prefixes=prefixes, loader=loader, force=True)
        # Also under MMEngine's module-level names: its
        # ``load_from_torchvision`` and ``load_from_mmcls`` call
        # ``load_from_http`` by that name.
        setattr(mme, loader.__name__, loader)
    mme.load_url = load_url
    dl_utils.load_url = load_url
    _APPLIED = True
    return True
