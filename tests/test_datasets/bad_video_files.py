# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Test helpers: a folder of good and broken videos and a list of them.

Shared by the tests of the robust datasets, ``BrokenSampleReportHook`` and
``tools/analysis/check_videos.py`` (the latter two put this folder on
``sys.path``).
"""
import os.path as osp
import shutil
from typing import Dict, List, Tuple

import cv2
import numpy as np

REAL_VIDEO = '/work/shared/data/videos/kinetics_arm_wrestling.mp4'

# name -> what is wrong with it (None: nothing)
BROKEN = {
    'truncated.mp4': 'first 40 % of a real mp4, its index (moov) cut off',
    'empty.mp4': 'zero bytes',
    'not_a_video.mp4': 'a text file',
    'missing.mp4': 'not on disk',
}
SHORT = 'short_3_frames.mp4'


def write_video(path: str, num_frames: int, size: Tuple[int, int] = (32, 24),
                value: int = 0) -> str:
    """Write a small mp4 (``mp4v``) whose frame ``i`` is filled with
    ``value + 10 * i`` (so tests can tell frames apart)."""
    width, height = size
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 10,
                             (width, height))
    assert writer.isOpened(), f'cv2 cannot write {path}'
    for i in range(num_frames):
        writer.write(
            np.full((height, width, 3), (value + 10 * i) % 256, np.uint8))
    writer.release()
    return path


def make_bad_video_set(root: str, num_good: int = 4,
                       good_frames: int = 16,
                       size: Tuple[int, int] = (32, 24)
                       ) -> Dict[str, List[str]]:
    """Fill ``root`` with good, broken and short videos (good and short of
    ``size``, width x height).

    Returns:
        dict: ``good``, ``broken`` and ``short`` file names (relative to
        ``root``; ``missing.mp4`` is not created).
    """
    good = []
    for i in range(num_good):
        good.append(f'good_{i}.mp4')
        write_video(osp.join(root, good[-1]), good_frames, size=size,
                    value=20 * i)
    with open(REAL_VIDEO, 'rb') as f:
        real = f.read()
    with open(osp.join(root, 'truncated.mp4'), 'wb') as f:
        f.write(real[:int(len(real) * 0.4)])
    open(osp.join(root, 'empty.mp4'), 'wb').close()
    with open(osp.join(root, 'not_a_video.mp4'), 'w') as f:
        f.write('this is not a video\n')
    write_video(osp.join(root, SHORT), 3, size=size, value=100)
    return dict(good=good, broken=list(BROKEN), short=[SHORT])


def copy_real_video(root: str, name: str = 'real.mp4') -> str:
    """Copy the real Kinetics clip (280 frames) into ``root``."""
    shutil.copyfile(REAL_VIDEO, osp.join(root, name))
    return name


def write_video_list(path: str, names: List[str], num_classes: int = 2) -> str:
    """Write ``name label`` lines, labels cycling over ``num_classes``."""
    with open(path, 'w') as f:
        for i, name in enumerate(names):
            f.write(f'{name} {i % num_classes}\n')
    return path


def clip_pipeline(num_clips: int = 8, clip_len: int = 5,
                  test_mode: bool = False) -> List[dict]:
    """A TDN-like pipeline (8 x 5 frames, short videos repeat their last
    frame) at a tiny resolution."""
    return [
        dict(type='DecordInit'),
        dict(
            type='SampleFrames',
            clip_len=clip_len,
            num_clips=num_clips,
            out_of_bound_opt='repeat_last',
            test_mode=test_mode),
        dict(type='DecordDecode'),
        dict(type='Resize', scale=(16, 16), keep_ratio=False),
        dict(type='FormatShape', input_format='NCHW'),
        dict(type='PackActionInputs'),
    ]
