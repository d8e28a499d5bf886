# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Pictures of windowed recognition: a timeline PNG and an annotated
video."""
from typing import List, Optional, Sequence

import numpy as np


def plot_timeline(windows: Sequence, labels: Sequence[str], out: str,
                  scores: Optional[np.ndarray] = None,
                  title: str = '', max_classes: int = 6) -> str:
    """Write a timeline PNG of windowed predictions.

    Top: the top-1 class of every window as a coloured bar over its time
    span (overlapping windows are drawn from their start to the next
    window's start). Bottom: score bands, the score of each of the
    ``max_classes`` classes that are top-1 most often, over the window
    centres.

    Args:
        windows: :class:`~mmaction_tdx.apis.video_recognizer.
            WindowPrediction` objects, in order.
        labels: Class names.
        out (str): PNG path.
        scores (ndarray, optional): ``(num_windows, num_classes)`` scores
            to draw instead of the windows' own (e.g. smoothed).
        title (str): Figure title.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    if scores is None:
        scores = np.stack([w.scores for w in windows])
    top1 = scores.argmax(axis=1)
    counts = np.bincount(top1, minlength=scores.shape[1])
    shown = [int(c) for c in np.argsort(-counts, kind='stable')
             if counts[c] > 0][:max_classes]
    for c in np.argsort(-scores.max(axis=0), kind='stable'):
        if len(shown) >= max_classes:
            break
        if int(c) not in shown:
            shown.append(int(c))
    colours = plt.get_cmap('tab10')
    colour = {c: colours(i % 10) for i, c in enumerate(shown)}

    fig, (ax_top, ax_scores) = plt.subplots(
        2, 1, figsize=(10, 4.5), sharex=True,
        gridspec_kw=dict(height_ratios=[1, 3]))
    for i, w in enumerate(windows):
        stop = windows[i + 1].start if i + 1 < len(windows) else w.end
        stop = max(stop, w.start + 1e-3)
        ax_top.barh(0, stop - w.start, left=w.start, height=0.8,
                    color=colour.get(int(top1[i]), 'lightgrey'),
                    edgecolor='white', linewidth=0.5)
    ax_top.set_yticks([])
    ax_top.set_ylabel('top-1')
    centres = np.array([(w.start + w.end) / 2 for w in windows])
    for c in shown:
        ax_scores.plot(centres, scores[:, c], '-o', markersize=3,
                       color=colour[c], label=labels[c])
        ax_scores.fill_between(centres, 0, scores[:, c], color=colour[c],
                               alpha=0.12)
    top = float(scores[:, shown].max())
    ax_scores.set_ylim(0, min(1.02, top * 1.15) if 0 < top <= 1 else None)
    ax_scores.set_xlabel('time (s)')
    ax_scores.set_ylabel('score')
    ax_scores.grid(alpha=0.3)
    ax_scores.legend(loc='upper left', bbox_to_anchor=(1.0, 1.0),
                     fontsize=8, frameon=False)
    if title:
        ax_top.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_annotated_video(frames, fps: float, windows: Sequence,
                          labels: Sequence[str], out: str,
                          scores: Optional[np.ndarray] = None) -> int:
    """Write ``frames`` (an iterable of RGB ``(H, W, 3)`` uint8) to an mp4
    with the top-1 label and score of the window covering each frame
    (the latest window that started at or before it) drawn on top.
    Returns the number of frames written."""
    import cv2
    if scores is None:
        scores = np.stack([w.scores for w in windows])
    starts = np.array([w.start_frame for w in windows])
    writer: Optional[cv2.VideoWriter] = None
    written = 0
    try:
        for frame_no, frame in enumerate(frames):
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*'mp4v'),
                                         fps, (width, height))
                if not writer.isOpened():
                    raise OSError(f'OpenCV cannot write {out}.')
            image = np.ascontiguousarray(frame[:, :, ::-1])
            covering = np.searchsorted(starts, frame_no, side='right') - 1
            if covering >= 0:
                best = int(scores[covering].argmax())
                text = f'{labels[best]} {scores[covering, best]:.2f}'
                scale = max(0.4, image.shape[1] / 640)
                cv2.putText(image, text, (8, int(24 * scale)),
                            cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                            3, cv2.LINE_AA)
                cv2.putText(image, text, (8, int(24 * scale)),
                            cv2.FONT_HERSHEY_SIMPLEX, scale,
                            (255, 255, 255), 1, cv2.LINE_AA)
            writer.write(image)
            written += 1
    finally:
        if writer is not None:
            writer.release()
    return written


__all__: List[str] = ['plot_timeline', 'write_annotated_video']
