# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""A synthetic, motion-defined video dataset (real mp4 files).

Every class is defined by motion alone. Classes come in *reversal pairs*: a
clip of the second class of a pair is a clip of the first class played
backwards (moving right / moving left, moving down / moving up, approaching /
receding, rotating clockwise / anticlockwise, appearing / disappearing). The
generator draws the scene (textured background, object shape, colour, start
position, speed) from the same distribution for both classes of a pair and
only then decides the playback direction, so the *set* of frames of a clip
carries no information about which class of its pair it belongs to. A model
that is blind to frame order (TSN with average consensus) therefore cannot
beat chance within a pair, and its top-1 is bounded by 1/2 (it can still tell
pairs apart), while temporal models can learn all classes.

The scene is made for models trained from scratch in minutes on a CPU (the
quick start): a bright, saturated object (each channel >= 140, one at
255) on a dark, low-contrast texture, and motions that span the whole clip
and most of the frame (a sweep over about half the frame, a 3x growth, half
a turn, a fade from nothing), so that 4 segments of a clip see clearly
different states. The ``tune`` split (:func:`render_clip` only, not
written by :func:`generate`) has its own scenes, for designing recipes
without looking at ``val``.

The output follows MMAction2's video-list layout::

    <root>/videos/<split>/<class>_<index>.mp4
    <root>/train_list.txt  # "<split>/<file>.mp4 <label>" per line
    <root>/val_list.txt
    <root>/label_map.txt   # class names, line index = label
"""
import json
import os
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

# (forward-in-time class, reversed class); label order is this flattened.
MOTION_PAIRS: Tuple[Tuple[str, str], ...] = (
    ('moving right', 'moving left'),
    ('moving down', 'moving up'),
    ('approaching', 'receding'),
    ('rotating clockwise', 'rotating anticlockwise'),
    ('appearing', 'disappearing'),
)
CLASSES: Tuple[str, ...] = tuple(name for pair in MOTION_PAIRS
                                 for name in pair)
SHAPES = ('triangle', 'arrow', 'ell', 'bar', 'kite')
# Seeds of the splits; 'tune' is a split for designing the recipe, so that
# the validation split is never looked at while choosing settings.
SPLIT_CODES = {'train': 0, 'val': 1, 'probe': 2, 'tune': 3}


@dataclass
class SyntheticMotionSpec:
    """What to generate.

    Args:
        root: output folder.
        num_train_per_class / num_val_per_class: clips per class and split.
        frames: frames per clip.
        size: square frame size in pixels (64-112 is the intended range).
        fps: frame rate written into the mp4.
        seed: every clip is a pure function of ``(seed, split, index)``.
        num_pairs: how many of :data:`MOTION_PAIRS` to use (2 classes each).
        background_contrast: texture strength of the scene, 0 (flat) to 1.
    """
    root: str
    num_train_per_class: int = 24
    num_val_per_class: int = 8
    frames: int = 24
    size: int = 64
    fps: int = 12
    seed: int = 0
    num_pairs: int = len(MOTION_PAIRS)
    background_contrast: float = 0.25

    @property
    def classes(self) -> Tuple[str, ...]:
        return CLASSES[:2 * self.num_pairs]


def _textured_background(rng: np.random.Generator, size: int,
                         contrast: float) -> np.ndarray:
    """Dark, low-contrast smooth texture: coarse noise upsampled, tinted.

    ``contrast`` (0-1) scales the texture; the quick start keeps it low so
    that a model trained from scratch in minutes finds the object at once
    (the scene is a nuisance, not the subject of the demo).
    """
    cells = rng.integers(3, 9)
    coarse = rng.random((cells, cells)).astype(np.float32)
    smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    fine = rng.random((size, size)).astype(np.float32) * 0.25
    mix = np.clip(smooth * 0.75 + fine, 0, 1)[..., None]
    tint = rng.uniform(0.3, 1.0, 3).astype(np.float32)
    base = rng.uniform(20, 70)
    texture = (mix - 0.5) * 2 * 80 * contrast
    return np.clip(base * tint + texture * tint, 0, 255).astype(np.uint8)


def _shape_polygon(shape: str) -> np.ndarray:
    """Unit-size polygon (no rotational symmetry, so rotation is visible)."""
    polygons = {
        'triangle': [(0.0, -1.0), (0.6, 0.8), (-0.6, 0.8)],
        'arrow': [(0.0, -1.0), (0.7, 0.0), (0.25, 0.0), (0.25, 0.9),
                  (-0.25, 0.9), (-0.25, 0.0), (-0.7, 0.0)],
        'ell': [(-0.6, -1.0), (-0.1, -1.0), (-0.1, 0.5), (0.7, 0.5),
                (0.7, 1.0), (-0.6, 1.0)],
        'bar': [(-0.3, -1.0), (0.3, -1.0), (0.3, 1.0), (-0.3, 1.0)],
        'kite': [(0.0, -1.0), (0.5, -0.2), (0.0, 1.0), (-0.5, -0.2)],
    }
    return np.asarray(polygons[shape], dtype=np.float32)


def _draw(background: np.ndarray, polygon: np.ndarray, colour: np.ndarray,
          centre: Tuple[float, float], scale: float, angle: float,
          alpha: float) -> np.ndarray:
    frame = background.copy()
    if alpha <= 0 or scale <= 0:
        return frame
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]], dtype=np.float32)
    points = polygon @ rotation.T * scale + np.asarray(centre, np.float32)
    # Sub-pixel precision keeps slow motion smooth.
    shift = 4
    points = np.round(points * (1 << shift)).astype(np.int32)
    layer = frame.copy()
    cv2.fillPoly(layer, [points], colour.tolist(), cv2.LINE_AA, shift)
    return cv2.addWeighted(layer, alpha, frame, 1 - alpha, 0)


def _forward_trajectory(kind: int, rng: np.random.Generator, size: int,
                        frames: int) -> List[Dict[str, float]]:
    """Object state per frame for the *forward* class of pair ``kind``.

    Every motion spans the whole clip and most of the frame (a sweep over
    about half the frame, a 3x growth, half a turn, a fade from nothing),
    so that 4 segments sampled from it see clearly different states.
    """
    t = np.linspace(0.0, 1.0, frames)
    base_scale = size * rng.uniform(0.15, 0.19)
    margin = base_scale * 1.05
    angle0 = rng.uniform(0, 2 * np.pi)
    cx = rng.uniform(margin, size - margin)
    cy = rng.uniform(margin, size - margin)
    travel = rng.uniform(0.8, 1.0) * (size - 2 * margin)
    start = rng.uniform(margin, size - margin - travel)
    centre = size / 2 + (cx - size / 2) * 0.3, size / 2 + (cy - size / 2) * 0.3
    states = []
    for step in t:
        state = dict(cx=cx, cy=cy, scale=base_scale, angle=angle0, alpha=1.0)
        if kind == 0:  # moving right
            state['cx'] = start + travel * step
        elif kind == 1:  # moving down
            state['cy'] = start + travel * step
        elif kind == 2:  # approaching: grows
            state['scale'] = base_scale * (0.5 + 1.3 * step)
            state['cx'], state['cy'] = centre
        elif kind == 3:  # rotating clockwise (image y points down)
            state['angle'] = angle0 + step * np.pi
            state['scale'] = base_scale * 1.5
            state['cx'], state['cy'] = centre
        elif kind == 4:  # appearing: fades and grows in
            ramp = float(np.clip(step / 0.8, 0.0, 1.0))
            state['alpha'] = ramp
            state['scale'] = base_scale * (0.5 + 0.8 * ramp)
        states.append(state)
    return states


def render_clip(spec: SyntheticMotionSpec, split: str, index: int,
                label: int) -> np.ndarray:
    """Render one clip as ``(frames, size, size, 3)`` uint8 BGR frames.

    The scene depends on ``(seed, split, index)`` and the *pair* of the
    label only; the label's position within its pair only sets the playback
    direction.
    """
    pair, reverse = divmod(label, 2)
    split_code = SPLIT_CODES.get(split, len(SPLIT_CODES))
    rng = np.random.default_rng([spec.seed, split_code, index, pair])
    background = _textured_background(rng, spec.size,
                                      spec.background_contrast)
    polygon = _shape_polygon(SHAPES[rng.integers(len(SHAPES))])
    # A bright, saturated object on the dark scene: high contrast.
    colour = rng.uniform(0.55, 1.0, 3)
    colour[rng.integers(3)] = 1.0
    colour = (colour * 255).astype(np.uint8)
    states = _forward_trajectory(pair, rng, spec.size, spec.frames)
    # Per-frame sensor noise, drawn in forward order so that reversal
    # permutes frames exactly.
    noise = rng.normal(0, 3, (spec.frames, spec.size, spec.size, 3))
    clip = []
    for state, frame_noise in zip(states, noise):
        frame = _draw(background, polygon, colour, (state['cx'], state['cy']),
                      state['scale'], state['angle'], state['alpha'])
        frame = np.clip(frame.astype(np.float32) + frame_noise, 0, 255)
        clip.append(frame.astype(np.uint8))
    clip = np.stack(clip)
    return clip[::-1].copy() if reverse else clip


def write_mp4(path: str, frames: np.ndarray, fps: int) -> None:
    """Write BGR frames as an MPEG-4 part 2 mp4 (decodable by decord)."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (width, height))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write mp4 files ({path}); '
                           'install opencv-python with FFmpeg support.')
    for frame in frames:
        writer.write(frame)
    writer.release()


def check_decodable(path: str, frames: np.ndarray) -> None:
    """Read a written clip back with decord, as the training pipeline will.

    decord 0.6.0 fails on some frame sizes (e.g. 48x48 mp4v clips raise
    "DECORDArrayCopyFromTo: The size must exactly match"); catching that here
    names the setting instead of failing inside a dataloader worker.
    """
    import decord
    try:
        reader = decord.VideoReader(path)
        decoded = reader.get_batch([0]).asnumpy()
        count = len(reader)
    except Exception as error:  # decord raises its own DECORDError
        raise RuntimeError(
            f'decord cannot read the generated clip {path} '
            f'({frames.shape[2]}x{frames.shape[1]}): {error}. Choose another '
            '--size (64, 80, 96 and 112 are known to work).') from error
    if decoded.shape[1:3] != frames.shape[1:3] or count != len(frames):
        raise RuntimeError(
            f'decord reads {path} as {count} frames of '
            f'{decoded.shape[2]}x{decoded.shape[1]}, but '
            f'{len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} '
            'were written. Choose another --size (64-112).')


def clip_jobs(spec: SyntheticMotionSpec) -> List[Tuple[str, int, int]]:
    """``(split, index, label)`` for every clip, in a fixed order."""
    jobs = []
    for split, per_class in (('train', spec.num_train_per_class),
                             ('val', spec.num_val_per_class)):
        for label in range(len(spec.classes)):
            for k in range(per_class):
                jobs.append((split, label * per_class + k, label))
    return jobs


def clip_relpath(spec: SyntheticMotionSpec, split: str, index: int,
                 label: int) -> str:
    name = spec.classes[label].replace(' ', '_')
    return f'{split}/{name}_{index:04d}.mp4'


def _generate_one(args) -> str:
    spec, split, index, label = args
    relpath = clip_relpath(spec, split, index, label)
    path = osp.join(spec.root, 'videos', relpath)
    write_mp4(path, render_clip(spec, split, index, label), spec.fps)
    return relpath


def generate(spec: SyntheticMotionSpec,
             nproc: int = 1,
             show_progress: bool = True) -> Dict[str, str]:
    """Generate the dataset (idempotent: an identical existing one is kept).

    Returns:
        dict: paths of ``train_list``, ``val_list``, ``label_map``.
    """
    from mmengine.utils import track_parallel_progress, track_progress
    outputs = dict(
        train_list=osp.join(spec.root, 'train_list.txt'),
        val_list=osp.join(spec.root, 'val_list.txt'),
        label_map=osp.join(spec.root, 'label_map.txt'))
    stamp_path = osp.join(spec.root, 'spec.json')
    stamp = json.dumps(asdict(spec), sort_keys=True)
    if osp.isfile(stamp_path) and all(map(osp.isfile, outputs.values())):
        with open(stamp_path) as f:
            if f.read() == stamp:
                return outputs
    for split in ('train', 'val'):
        os.makedirs(osp.join(spec.root, 'videos', split), exist_ok=True)
    jobs = [(spec, *job) for job in clip_jobs(spec)]
    probe_path = osp.join(spec.root, 'videos', 'decord_probe.mp4')
    probe = render_clip(spec, 'probe', 0, 0)
    write_mp4(probe_path, probe, spec.fps)
    try:
        check_decodable(probe_path, probe)
    finally:
        os.remove(probe_path)
    if not show_progress:
        list(map(_generate_one, jobs))
    elif nproc > 1:
        track_parallel_progress(_generate_one, jobs, nproc)
    else:
        track_progress(_generate_one, jobs)
    lines = {'train': [], 'val': []}
    for _, split, index, label in jobs:
        lines[split].append(
            f'{clip_relpath(spec, split, index, label)} {label}')
    for split in ('train', 'val'):
        with open(outputs[f'{split}_list'], 'w') as f:
            f.write('\n'.join(lines[split]) + '\n')
    with open(outputs['label_map'], 'w') as f:
        f.write('\n'.join(spec.classes) + '\n')
    with open(stamp_path, 'w') as f:
        f.write(stamp)
    return outputs


def reversal_partner(label: int) -> int:
    """The label of the same motion played backwards."""
    return label ^ 1


def pair_of(labels: Sequence[int]) -> np.ndarray:
    return np.asarray(labels) // 2
