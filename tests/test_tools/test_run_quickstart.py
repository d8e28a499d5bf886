# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""``make demo``'s job end to end, on a tiny dataset and one epoch."""
import subprocess
import sys

from conftest import REPO_ROOT


def test_quickstart_prints_a_table(tmp_path):
    result = subprocess.run(
        [
            sys.executable, 'tools/run_quickstart.py', '--models', 'tsn',
            'tdrl', '--epochs', '1', '--train-per-class', '1',
            '--val-per-class', '1', '--data-root',
            str(tmp_path / 'data'), '--work-dir',
            str(tmp_path / 'work')
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[
        -2000:]
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines)
                  if line.startswith('model'))
    rows = [line.split() for line in lines[header + 2:header + 4]]
    assert [row[0] for row in rows] == ['TSN', 'TDRL']
    for row in rows:
        top1 = float(row[1].rstrip('%'))
        assert 0.0 <= top1 <= 100.0
    assert 'quick start finished: 2 models' in result.stdout
