# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""docs/own_dataset.md walked end to end at a tiny size: a folder of
videos, its ``make_lists.py``, its config (tiny values), and each of its
commands as written (train, multi-view test, demo), in fresh processes
from a working directory outside the repository."""
import os
import os.path as osp
import pickle
import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, load_tool

from mmaction_tdx.datasets.synthetic_motion import (
    SyntheticMotionSpec,
    render_clip,
    write_mp4,
)

GUIDE = osp.join(REPO_ROOT, 'docs', 'own_dataset.md')
# What the guide's "What the test changes" note lists.
TINY_VALUES = dict(num_segments=2, short_side=64, input_size=56,
                   batch_size=2, max_epochs=1)
TINY_OPTIONS = [
    'model.backbone.depth=18', 'model.backbone.pretrained=None',
    'model.cls_head.in_channels=512'
] + [f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader',
                                      'test_dataloader')
     for key in ('num_workers=0', 'persistent_workers=False')]


def blocks(language):
    with open(GUIDE) as f:
        return re.findall(rf'```{language}\n(.*?)```', f.read(), re.S)


def commands():
    """The guide's shell commands, in order, as argument lists."""
    return [shlex.split(line) for block in blocks('shell')
            for line in block.splitlines()
            if line.strip() and not line.startswith('#')]


def tiny_config(text):
    for name, value in TINY_VALUES.items():
        text, count = re.subn(rf'^{name} = .*$', f'{name} = {value}', text,
                              flags=re.M)
        assert count == 1, f'the guide\'s config has no "{name} = ..."'
    return text


# Tools with a main(argv), run in this process (a fresh interpreter costs
# seconds of imports); training and testing run as a user runs them.
IN_PROCESS = ('tools/analysis/check_videos.py', 'demo/demo.py')


def run(argv, cwd, capsys=None):
    """A command of the guide, from ``cwd``; ``python tools/...`` and
    ``python demo/...`` are the repository's scripts."""
    assert argv[0] == 'python', argv
    script = argv[1]
    extra = []
    if osp.basename(script) in ('train.py', 'test.py', 'demo.py'):
        extra = ['--cfg-options', *TINY_OPTIONS]
    if script in IN_PROCESS:
        capsys.readouterr()
        previous = os.getcwd()
        os.chdir(cwd)
        try:
            code = load_tool(script).main([*argv[2:], *extra])
        finally:
            os.chdir(previous)
        captured = capsys.readouterr()
        assert code == 0, ' '.join(argv) + '\n' + captured.err[-3000:]
        return captured.out + captured.err
    if script.startswith(('tools/', 'demo/')):
        script = osp.join(REPO_ROOT, script)
    result = subprocess.run(
        [sys.executable, script, *argv[2:], *extra], cwd=cwd,
        capture_output=True, text=True, timeout=300,
        env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, (' '.join(argv) + '\n' +
                                    result.stdout[-3000:] +
                                    result.stderr[-3000:])
    return result.stdout + result.stderr


@pytest.fixture(scope='module')
def my_videos(tmp_path_factory):
    """``my_videos/<class>/clip_00k.mp4``: 5 short videos for each of 2
    classes (the synthetic motion clips of 'moving right' and 'moving
    left', 12 frames of 64x64)."""
    work = tmp_path_factory.mktemp('own_dataset')
    spec = SyntheticMotionSpec(root=str(work), frames=12, size=64)
    for label, name in enumerate(('clapping', 'waving')):
        os.makedirs(work / 'my_videos' / name)
        for k in range(5):
            frames = render_clip(spec, 'train', 10 * label + k, label)
            write_mp4(str(work / 'my_videos' / name / f'clip_00{k + 1}.mp4'),
                      frames, spec.fps)
    return work


def test_the_guide_end_to_end(my_videos, capsys):
    work = my_videos
    (make_lists, ) = blocks('python')[:1]
    (work / 'make_lists.py').write_text(make_lists)
    config = blocks('python')[1]
    assert "'mmaction_tdx::_base_/default_runtime.py'" in config
    (work / 'my_tdn_config.py').write_text(tiny_config(config))
    steps = commands()
    names = [f'{argv[1]}' for argv in steps]
    assert names == ['make_lists.py', 'tools/analysis/check_videos.py',
                     'tools/train.py', 'tools/test.py', 'demo/demo.py']
    make, check, train, test, demo = steps

    out = run(make, work)
    assert '2 classes, 8 train and 2 val videos' in out
    assert (work / 'my_videos' / 'label_map.txt').read_text() == (
        'clapping\nwaving\n')
    train_list = (work / 'my_videos' / 'train_list.txt').read_text()
    assert train_list.startswith('clapping/clip_001.mp4 0\n')
    run(check, work, capsys)
    assert (work / 'my_videos' / 'train_clean.txt').read_text() == (
        train_list)

    out = run(train, work)
    assert 'Epoch(val) [1]' in out and 'acc/top1' in out
    checkpoint = work / 'work_dirs' / 'my_tdn' / 'epoch_1.pth'
    assert checkpoint.is_file()

    # The guide tests its last epoch (epoch_30.pth); this run has one.
    test = [arg.replace('epoch_30.pth', 'epoch_1.pth') for arg in test]
    run(test, work)
    with open(work / 'work_dirs' / 'my_tdn' / 'scores.pkl', 'rb') as f:
        results = pickle.load(f)
    # One (fused) score per video from test_views x 3 crops views.
    assert len(results) == 2
    assert tuple(results[0]['pred_score'].shape) == (2, )

    demo = [arg.replace('epoch_30.pth', 'epoch_1.pth') for arg in demo]
    out = run(demo, work, capsys)
    lines = out.strip().splitlines()
    assert lines[-3] == 'The top-2 labels with corresponding scores are:'
    assert {line.split(':')[0] for line in lines[-2:]} == {'clapping',
                                                          'waving'}
