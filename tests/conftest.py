# Copyright (c) mmaction_tdx contributors. All rights reserved.
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

# Repairs the stack (mmaction_tdx.compat) before any test imports
# mmaction.models.
import mmaction_tdx  # noqa: F401

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(osp.dirname(REPO_ROOT), 'shared')


def run_python(code: str, env: dict = None, timeout: int = 300,
               cwd: str = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (no state shared with the test)."""
    full_env = dict(os.environ)
    full_env.pop('MMACTION_TDX_SKIP_COMPAT', None)
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env.update(env or {})
    return subprocess.run([sys.executable, '-c',
                           textwrap.dedent(code)],
                          capture_output=True,
                          text=True,
                          env=full_env,
                          cwd=cwd or REPO_ROOT,
                          timeout=timeout)


@pytest.fixture
def python_runner():
    return run_python


@pytest.fixture(scope='session')
def shared_dir():
    if not osp.isdir(SHARED):
        pytest.skip(f'{SHARED} is not present (CI puts ../shared beside the '
                    'clone)')
    return SHARED
