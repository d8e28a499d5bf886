# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Developer tools never load code from tests/ (a tool must work from a
source tree without the tests, e.g. the GPU check's carried tree)."""
import glob
import os.path as osp
import re

from conftest import REPO_ROOT

# An import of tests/conftest, or a path built to a file under tests/.
LOADS_TESTS = re.compile(
    r"""^\s*(from|import)\s+(tests|conftest)\b"""
    r"""|['"]tests['"]\s*,|['"]tests/[^'"]*\.py['"]""", re.M)


def test_no_tool_loads_code_from_tests():
    tools = glob.glob(osp.join(REPO_ROOT, 'tools', '**', '*.py'),
                      recursive=True)
    assert len(tools) > 10
    offenders = [
        osp.relpath(path, REPO_ROOT) for path in tools
        if LOADS_TESTS.search(open(path, encoding='utf-8').read())
    ]
    assert offenders == []


def test_the_pattern_catches_the_old_release_loader():
    old = ("path = osp.join(REPO_ROOT, 'tests', 'test_tools',\n"
           "                'test_tdn_official.py')")
    assert LOADS_TESTS.search(old)
    assert LOADS_TESTS.search('from conftest import load_tool')
    assert not LOADS_TESTS.search(
        '(``tests/test_tools/test_tdn_official.py``) checks it')
