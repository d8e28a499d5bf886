# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""mmaction_tdx: TDN and TDRL for MMAction2.

Importing the package (which
``custom_imports = dict(imports=['mmaction_tdx'])`` in every config of ours
does) first repairs known defects of the installed stack
(:mod:`mmaction_tdx.compat`) and then registers our models, datasets,
transforms, hooks and metrics in MMAction2's registries.
"""
import mmcv
from mmengine.utils import digit_version

from .version import __version__, version_info

# Same window as mmaction2 1.2.0 itself accepts; full mmcv (GPU ops) and
# mmcv-lite both provide the ``mmcv`` module.
MMCV_MIN = '2.0.0rc4'
MMCV_MAX = '2.2.0'


def _check_mmcv() -> None:
    found = digit_version(mmcv.__version__)
    if not (digit_version(MMCV_MIN) <= found < digit_version(MMCV_MAX)):
        raise ImportError(
            f'mmaction_tdx (like mmaction2 1.2.0) needs {MMCV_MIN} <= mmcv < '
            f'{MMCV_MAX}, but mmcv {mmcv.__version__} is installed. On a GPU '
            'machine run `mim install mmcv==2.1.0`; on a CPU-only machine '
            '`pip install mmcv-lite==2.1.0`.')


_check_mmcv()

from . import compat  # noqa: E402

compat.apply_all()

from . import datasets, engine, evaluation, models  # noqa: E402,F401

__all__ = ['__version__', 'version_info', 'compat']
