# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Hide the known, harmless upstream warnings in our command-line tools.

A tool calls :func:`quiet_upstream` first, before it imports mmcv,
mmengine, mmaction or mmaction_tdx (several of these warnings fire at
import), so that its output starts with its answer. Only the messages
listed here are hidden, and only in the tool's process: the library
itself installs no filter (a user's own script sees every warning), and
``MMACTION_TDX_VERBOSE=1`` shows them in the tools too.

This module uses the standard library only: importing it must not import
the packages whose import-time warnings it hides.
"""
import logging
import os
import warnings

#: ``(category, message regex)`` of Python warnings hidden in the tools.
KNOWN_WARNINGS = (
    # mmcv-lite has no compiled ops; the recognizers never use this one.
    (UserWarning, r'Fail to import ``MultiScaleDeformableAttention``'),
    # mmengine/openmim import pkg_resources; setuptools is pinned below the
    # version that removes it (requirements/constraints.txt).
    (UserWarning, r'pkg_resources is deprecated as an API'),
    (DeprecationWarning, r'pkg_resources is deprecated as an API'),
    (DeprecationWarning, r'Deprecated call to `pkg_resources'),
)

#: Starts of MMEngine log messages hidden in the tools: deprecation notes
#: about MMEngine's own internals (its checkpoint loader uses FileClient),
#: which a user cannot act on.
KNOWN_LOG_MESSAGES = (
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)

_MARK = '_mmaction_tdx_quiet'


def _known_log_message(record: logging.LogRecord) -> bool:
    try:
        message = str(record.getMessage())
    except Exception:  # a malformed record is not ours to judge
        return False
    return message.startswith(KNOWN_LOG_MESSAGES)


def _quiet_mmengine_logger() -> None:
    """Drop :data:`KNOWN_LOG_MESSAGES` from every MMEngine logger.

    MMEngine's ``MMLogger`` instances are not managed by :mod:`logging`
    (each Runner makes its own), so the filter sits where all of them pass:
    ``MMLogger.callHandlers``. MMEngine is imported here, after the warning
    filters are in place.
    """
    from mmengine.logging import MMLogger
    upstream = MMLogger.callHandlers
    if getattr(upstream, _MARK, False):
        return

    def call_handlers(self, record):
        if not _known_log_message(record):
            upstream(self, record)

    setattr(call_handlers, _MARK, True)
    MMLogger.callHandlers = call_handlers


def quiet_upstream() -> bool:
    """Hide :data:`KNOWN_WARNINGS` and :data:`KNOWN_LOG_MESSAGES` in this
    process (idempotent).

    Returns:
        bool: False if ``MMACTION_TDX_VERBOSE`` is set (nothing hidden).
    """
    if os.environ.get('MMACTION_TDX_VERBOSE', '').strip() not in ('', '0'):
        return False
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category)
    _quiet_mmengine_logger()
    return True
