# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Let MMEngine's distributed training run on CPU-only machines (gloo).

Upstream defects (mmengine 0.10.7), both hit by ``tools/dist_train.sh
CONFIG 2`` (``--launcher pytorch``) on a machine without GPUs:

1. ``mmengine.dist.utils._init_dist_pytorch`` calls
   ``torch.cuda.set_device(LOCAL_RANK)`` unconditionally. With a CPU build
   of torch this raises ``AttributeError: module 'torch._C' has no
   attribute '_cuda_setDevice'`` (a CUDA build without GPUs raises a
   ``RuntimeError``) before the process group exists.
2. ``Runner.wrap_model`` builds ``MMDistributedDataParallel`` with
   ``device_ids=[LOCAL_RANK]``, which torch's ``DistributedDataParallel``
   refuses for a module on the CPU ("device_ids ... only work with
   single-device/multiple-device GPU modules").

The fix, only where no CUDA device is available: (1) initialises the
process group without selecting a device, with ``gloo`` where the config
asks for ``nccl`` (GPU-only; MMEngine's default, so a config written for
GPUs also runs here, and says so in the log); (2) drops
``device_ids`` when the wrapped module lives on the CPU, which is what
DDP expects there, and reverts SyncBN layers to BN with a warning (torch's
``SyncBatchNorm`` runs on GPUs only; MMEngine does the same when it trains
without DDP). With GPUs, or other accelerators MMEngine supports
(NPU, MLU, MUSA), MMEngine's code runs unchanged.
"""
import functools
import logging

import torch

_MARK = '_mmaction_tdx_cpu_dist'


def _other_accelerator() -> bool:
    from mmengine.device import (
        is_mlu_available,
        is_musa_available,
        is_npu_available,
    )
    return is_npu_available() or is_mlu_available() or is_musa_available()


def is_needed() -> bool:
    """True on a machine where MMEngine would call ``torch.cuda``."""
    return not torch.cuda.is_available() and not _other_accelerator()


def _patch_init_dist() -> None:
    from mmengine.dist import utils as dist_utils
    upstream = dist_utils._init_dist_pytorch
    if getattr(upstream, _MARK, False):
        return

    @functools.wraps(upstream)
    def init_dist_pytorch(backend='nccl', init_backend='torch', **kwargs):
        if not is_needed() or init_backend != 'torch':
            return upstream(backend, init_backend=init_backend, **kwargs)
        if backend == 'nccl':
            # MMEngine's default; GPU-only. Configs stay neutral (NCCL on
            # GPUs) and CPU runs use the one backend that works there.
            from mmengine.logging import print_log
            print_log(
                "No CUDA GPU here: the 'nccl' backend (GPU-only, the "
                "default of env_cfg.dist_cfg) is replaced by 'gloo'.",
                logger='current',
                level=logging.INFO)
            backend = 'gloo'
        torch.distributed.init_process_group(backend=backend, **kwargs)

    setattr(init_dist_pytorch, _MARK, True)
    dist_utils._init_dist_pytorch = init_dist_pytorch


def _patch_ddp_wrapper() -> None:
    from mmengine.model import MMDistributedDataParallel
    upstream = MMDistributedDataParallel.__init__
    if getattr(upstream, _MARK, False):
        return

    @functools.wraps(upstream)
    def __init__(self, module, *args, **kwargs):
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        if on_cpu:
            if kwargs.get('device_ids') is not None:
                # DDP replicates CPU modules without device ids.
                kwargs['device_ids'] = None
            module = _revert_sync_bn_on_cpu(module)
        upstream(self, module, *args, **kwargs)

    setattr(__init__, _MARK, True)
    MMDistributedDataParallel.__init__ = __init__


def _revert_sync_bn_on_cpu(module):
    """SyncBN -> BN, with a warning, for a module on the CPU.

    torch's ``SyncBatchNorm`` runs on GPUs only (DDP refuses it for a CPU
    module: "SyncBatchNorm layers only work with GPU modules"). MMEngine
    already reverts SyncBN to BN when it trains without DDP; on CPU ranks
    this does the same, so a GPU config with ``norm_cfg=dict(type='SyncBN')``
    still runs (each rank normalising its own batch). The state dict keys
    of both are the same, so checkpoints are interchangeable.
    """
    sync_bn = torch.nn.SyncBatchNorm
    if not any(isinstance(m, sync_bn) for m in module.modules()):
        return module
    from mmengine.logging import print_log
    from mmengine.model import revert_sync_batchnorm
    print_log(
        'SyncBatchNorm (norm_cfg=dict(type=\'SyncBN\')) runs on GPUs only; '
        'on these CPU ranks it is reverted to BatchNorm, which normalises '
        'each rank\'s batch separately. Use GPUs for synchronised BN, or '
        'norm_cfg=dict(type=\'BN\') to silence this warning.',
        logger='current',
        level=logging.WARNING)
    return revert_sync_batchnorm(module)


def apply() -> bool:
    """Install both patches on a machine without CUDA (idempotent).

    Returns:
        bool: True if the patches are active after the call.
    """
    if not is_needed():
        return False
    _patch_init_dist()
    _patch_ddp_wrapper()
    return True
