# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Every shell command in README.md and docs/*.md works as written, as far
as it can be checked without real data, checkpoints or GPUs.

Each command (a line of a ```shell / ```bash block, ``\\`` continuations
joined) is checked for what it refers to:

* ``python``/``bash`` scripts and ``configs/``, ``tools/``, ``demo/``...
  paths exist (``tools/data/`` of docs/datasets.md: MMAction2's scripts,
  looked up in the installed mmaction2's ``.mim/tools``);
* a ``python tools/X.py ARGS`` command (also inside ``srun``, and
  ``bash tools/dist_train.sh CONFIG N ARGS``) is accepted by the tool's own
  argument parser, flags and values as written (synopsis lines with
  ``[optional]`` parts: the script only);
* ``make X`` names a target of the Makefile; no ``pip install -e`` (mim
  cannot use a PEP 660 editable install, see README) and no ``../shared``
  paths (they exist only beside a development checkout).

A command whose inputs (checkpoints, videos, lists, logs: arguments with a
file's extension, or under ``data/``, ``work_dirs/``, ``checkpoints/``)
do not exist in a fresh clone must say what it needs, with a comment on
its last line or on a line of its own just above it::

    python tools/test.py CONFIG tdn.pth   # needs: a trained checkpoint

except on the pages a test runs end to end (:data:`RUN_BY`) or that are
about preparing real datasets (:data:`REAL_DATA_PAGES`). UPPER-CASE
words (``CONFIG``), ``<...>`` and ``...`` are placeholders.
"""
import argparse
import glob
import os.path as osp
import re
import shlex
import sys

import pytest
from conftest import REPO_ROOT, load_tool

PAGES = ['README.md'] + sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'docs', '*.md')))
MARKER = '# needs:'
# Pages whose commands a test runs, at a tiny size, as written.
RUN_BY = {'docs/own_dataset.md': 'tests/test_docs/test_own_dataset.py'}
# Pages whose every command works on a real dataset (the page says so).
REAL_DATA_PAGES = {'docs/datasets.md'}
REPO_DIRS = ('configs/', 'tools/', 'demo/', 'docs/', 'requirements/',
             'mmaction_tdx/')
INPUT_DIRS = ('data/', 'work_dirs/', 'checkpoints/')
FILE_EXT = re.compile(r'\.(pth|tar|mp4|avi|webm|txt|json|pkl|onnx|py|png)$')
OUTPUT_OPTIONS = {'--out', '--out-dir', '--out-filename', '--dump',
                  '--work-dir', '--figures-dir', '-o'}
# Tools' positional arguments that name what they write (by position).
WRITTEN = {'tools/data/generate_synthetic_motion.py': {0},
           'tools/deployment/export_onnx.py': {2}}
# Scripts of MMAction2 (docs/datasets.md runs them in its checkout).
MMACTION_TOOLS = osp.join(
    osp.dirname(__import__('mmaction').__file__), '.mim')


def extract(page):
    """``[(line number, command, marked)]`` of the page's shell blocks."""
    with open(osp.join(REPO_ROOT, page)) as f:
        lines = f.read().splitlines()
    found, in_block, pending, marked_above = [], False, None, False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith('```'):
            in_block = (not in_block
                        and stripped[3:].strip() in ('shell', 'bash', 'sh'))
            pending, marked_above = None, False
            continue
        if not in_block:
            continue
        if pending is None:
            if not stripped:
                marked_above = False
                continue
            if stripped.startswith('#'):
                marked_above = marked_above or stripped.startswith(MARKER)
                continue
            pending = [number, stripped]
        else:
            pending[1] += ' ' + stripped
        if pending[1].endswith('\\'):
            pending[1] = pending[1][:-1].rstrip()
            continue
        command = pending[1]
        marked = marked_above or MARKER in command
        found.append((pending[0], command, marked))
        pending, marked_above = None, False
    return found


COMMANDS = [(page, number, command, marked) for page in PAGES
            for number, command, marked in extract(page)]


def words(command):
    """The command's words, without its comment."""
    return shlex.split(command, comments=True)


def placeholder(word):
    return (word.isupper() or '<' in word or '...' in word or '*' in word
            or '$' in word  # the shell fills it in
            or re.fullmatch(r'[A-Z_]+(\.[a-z0-9]+)?', osp.basename(word))
            is not None)


def repo_path_exists(path, page):
    if osp.exists(osp.join(REPO_ROOT, path)):
        return True
    # MMAction2's own scripts, run from its checkout (docs/datasets.md).
    return page == 'docs/datasets.md' and osp.exists(
        osp.join(MMACTION_TOOLS, path))


class _Parsed(Exception):
    pass


def parse_with_tool(script, argv, monkeypatch):
    """Run ``script``'s ``main`` until its parser has read ``argv``:
    ``SystemExit`` (argparse's refusal) fails the command."""
    tool = load_tool(script)
    upstream = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        raise _Parsed(upstream(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', parse_args)
    monkeypatch.setattr(sys, 'argv', [script, *argv])
    monkeypatch.setenv('LOCAL_RANK', '0')
    try:
        tool.main()
    except _Parsed as parsed:
        return parsed.args[0]
    except SystemExit as err:
        raise AssertionError(f'{script} refuses {argv}: exit {err.code}')
    raise AssertionError(f'{script}.main() did not parse its arguments')


def tool_invocation(argv):
    """``(script, args)`` of a ``python``/``bash`` call of ours, or None."""
    for i, word in enumerate(argv):
        if osp.basename(word) in ('python', 'python3') or word.endswith(
                '/bin/python'):
            rest = [w for w in argv[i + 1:] if w != '-u']
            return (rest[0], rest[1:]) if rest else None
        if word == 'bash' or word.endswith('.sh'):
            script = argv[i + 1] if word == 'bash' else word
            rest = argv[argv.index(script) + 1:]
            return script, rest
    return None


def dist_to_python(script, args):
    """``tools/dist_train.sh CONFIG N ARGS`` -> ``tools/train.py`` args."""
    if osp.basename(script) == 'dist_train.sh':
        return 'tools/train.py', [args[0], *args[2:], '--launcher',
                                  'pytorch']
    if osp.basename(script) == 'dist_test.sh':
        return 'tools/test.py', [args[0], args[1], *args[3:], '--launcher',
                                 'pytorch']
    return None


def missing_inputs(argv, written=()):
    """File-like arguments (not outputs, not placeholders) that a fresh
    clone lacks; ``written``: the words the command writes."""
    missing, skip, optional = [], False, 0
    for word in argv:
        if word in written:
            continue
        # `[--shape FRAMES H W]`, `[train.py options]`: a synopsis
        optional += word.count('[') - word.count(']')
        if skip or optional or ']' in word:
            skip = False
            continue
        if word in OUTPUT_OPTIONS:
            skip = True
            continue
        if word.startswith('-') or placeholder(word):
            continue
        value = word.split('=', 1)[-1]
        if (FILE_EXT.search(value) or value.startswith(INPUT_DIRS)) and \
                not osp.exists(osp.join(REPO_ROOT, value)):
            missing.append(value)
    return missing


def test_the_pages_have_commands():
    assert len(COMMANDS) > 40
    assert any(page == 'docs/own_dataset.md' for page, *_ in COMMANDS)


@pytest.mark.parametrize(
    'page,number,command,marked', COMMANDS,
    ids=[f'{page}:{number}' for page, number, *_ in COMMANDS])
def test_command_works_as_written(page, number, command, marked,
                                  monkeypatch):
    argv = words(command)
    assert argv, command
    where = f'{page}:{number}: {command}'
    assert not (argv[:2] == ['pip', 'install'] and '-e' in argv), (
        f'{where}: not `pip install -e .` (mim cannot use a PEP 660 '
        'editable install); `make install` for development, `pip install .`'
        ' otherwise')
    assert '../shared' not in command, (
        f'{where}: ../shared exists only beside a development checkout')
    if argv[0] == 'make':
        with open(osp.join(REPO_ROOT, 'Makefile')) as f:
            targets = re.findall(r'^([\w-]+):', f.read(), re.M)
        assert argv[1] in targets, where
        return
    for word in argv:
        value = word.split('=', 1)[-1]
        if value.startswith(REPO_DIRS) and not placeholder(value):
            assert repo_path_exists(value, page), f'{where}: no {value}'
    call = tool_invocation(argv)
    written = set()
    if call is not None and call[0] in WRITTEN:
        positionals = [w for w in call[1] if not w.startswith('-')]
        written = {positionals[i] for i in WRITTEN[call[0]]
                   if i < len(positionals)}
    if page not in RUN_BY and page not in REAL_DATA_PAGES and not marked:
        missing = missing_inputs(argv, written)
        assert not missing, (
            f'{where}: needs {missing}, which a fresh clone lacks: say what '
            f"it needs with a '{MARKER} ...' comment")
    if call is None:
        return
    script, args = call
    if not script.startswith(('tools/', 'demo/')):
        return  # e.g. the guide's own make_lists.py
    assert repo_path_exists(script, page), f'{where}: no {script}'
    if script.endswith('.sh'):
        call = dist_to_python(script, args)
        if call is None:
            return
        script, args = call
    if any('[' in w for w in args) or not osp.exists(
            osp.join(REPO_ROOT, script)):
        return  # a synopsis, or MMAction2's script: checked it exists
    parse_with_tool(script, args, monkeypatch)
