# Copyright (c) mmaction_tdx contributors. All rights reserved.
__version__ = '0.1.0'


def parse_version_info(version_str: str) -> tuple:
    """Parse a version string like ``0.1.0`` or ``0.1.0rc1`` into a tuple."""
    parts = []
    for part in version_str.split('.'):
        if part.isdigit():
            parts.append(int(part))
        else:
            digits = ''.join(ch for ch in part if ch.isdigit())
            rest = part[len(digits):]
            parts.extend([int(digits) if digits else 0, rest])
    return tuple(parts)


version_info = parse_version_info(__version__)
