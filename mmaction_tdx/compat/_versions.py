# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Installed versions, for the compat fixes to decide whether a defect is
there.

Each fix names the last upstream release with its defect; the fix is
needed while the installed distribution is at most that release. Reading
a distribution's metadata (``importlib.metadata``) builds and imports
nothing, so every process (and DDP rank) can decide on import.
"""
from importlib.metadata import PackageNotFoundError, version
from typing import Optional

from mmengine.utils import digit_version


def installed(distribution: str) -> Optional[str]:
    """The installed version of ``distribution``, or None."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def at_most(distribution: str, last_defective: str) -> bool:
    """Whether the installed ``distribution`` is at most
    ``last_defective`` (the last release known to have the defect).

    A source checkout without metadata counts as defective: the fixes
    then stand in where upstream may already be fixed, which is harmless
    (each wraps, not replaces, upstream's behaviour).
    """
    found = installed(distribution)
    if found is None:
        return True
    return digit_version(found) <= digit_version(last_defective)
