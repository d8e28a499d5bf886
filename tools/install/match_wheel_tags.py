# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Rewrite a wheel so that its internal ``WHEEL`` tags match its file name.

Why: decord 0.6.0 is published as ``decord-0.6.0-py3-none-manylinux2010_x86_64
.whl`` but its ``decord-0.6.0.dist-info/WHEEL`` says
``Tag: cp36-cp36m-manylinux2010_x86_64``. pip installs it by the file name,
and then ``pip check`` reports "decord 0.6.0 is not supported on this
platform" because it reads the internal tag. The library itself is a
``ctypes``-loaded shared object that works on any CPython 3, as the file name
says. This tool writes a copy whose ``WHEEL`` (and its ``RECORD`` hash) agree
with the file name; the content is otherwise byte-identical.

Usage::

    python tools/install/match_wheel_tags.py IN.whl OUT_DIR
"""
import base64
import hashlib
import os
import os.path as osp
import sys
import zipfile


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return 'sha256=' + base64.urlsafe_b64encode(digest).rstrip(b'=').decode()


def filename_tags(path: str) -> list:
    """``['py3-none-manylinux2010_x86_64']`` from a wheel's file name."""
    stem = osp.basename(path)[:-len('.whl')]
    python, abi, platform = stem.split('-')[-3:]
    return [
        f'{p}-{a}-{pl}' for p in python.split('.') for a in abi.split('.')
        for pl in platform.split('.')
    ]


def match_tags(src: str, out_dir: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    dst = osp.join(out_dir, osp.basename(src))
    tags = filename_tags(src)
    with zipfile.ZipFile(src) as zin:
        names = zin.namelist()
        wheel_name = next(n for n in names
                          if n.endswith('.dist-info/WHEEL'))
        record_name = next(n for n in names
                           if n.endswith('.dist-info/RECORD'))
        wheel_lines = zin.read(wheel_name).decode().splitlines()
        new_wheel = '\n'.join(
            [line for line in wheel_lines
             if line.strip() and not line.startswith('Tag:')] +
            [f'Tag: {tag}' for tag in tags]) + '\n'
        new_wheel_bytes = new_wheel.encode()
        record_lines = []
        for line in zin.read(record_name).decode().splitlines():
            if line.startswith(wheel_name + ','):
                line = (f'{wheel_name},{_record_hash(new_wheel_bytes)},'
                        f'{len(new_wheel_bytes)}')
            record_lines.append(line)
        with zipfile.ZipFile(dst, 'w', zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                if info.filename == wheel_name:
                    data = new_wheel_bytes
                elif info.filename == record_name:
                    data = ('\n'.join(record_lines) + '\n').encode()
                else:
                    data = zin.read(info.filename)
                zout.writestr(info, data)
    return dst


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(match_tags(sys.argv[1], sys.argv[2]))
