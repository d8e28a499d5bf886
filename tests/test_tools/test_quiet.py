# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Our tools hide the known upstream warnings (tools/_quiet.py), the
library does not."""
import logging
import os
import subprocess
import sys

from conftest import REPO_ROOT, load_tool


def test_train_help_prints_no_upstream_warnings():
    """``tools/train.py`` imports mmcv (lite: "Fail to import
    MultiScaleDeformableAttention") and mmengine (pkg_resources is
    deprecated) at start-up; its output is its own."""
    env = {k: v for k, v in os.environ.items()
           if k != 'MMACTION_TDX_VERBOSE'}
    result = subprocess.run([sys.executable, 'tools/train.py', '--help'],
                            cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300, env=env)
    assert 'usage: train.py' in result.stdout
    assert 'Warning' not in result.stderr, result.stderr


def test_known_mmengine_messages_are_dropped(monkeypatch):
    from mmengine.logging import MMLogger
    quiet = load_tool('tools/_quiet.py')
    monkeypatch.setattr(MMLogger, 'callHandlers', MMLogger.callHandlers)
    monkeypatch.delenv('MMACTION_TDX_VERBOSE', raising=False)
    assert quiet.quiet_upstream()
    seen = []
    logger = MMLogger.get_instance('quiet_test', log_level='INFO')
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    monkeypatch.setattr(logger, 'handlers', [handler])
    logger.warning('"FileClient" will be deprecated in future. Please use')
    logger.warning('a warning of ours')
    assert seen == ['a warning of ours']
    monkeypatch.setenv('MMACTION_TDX_VERBOSE', '1')
    assert not quiet.quiet_upstream()
