# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Write rows of images (frames, feature maps, heatmaps) as one PNG."""
import os
import os.path as osp
from typing import Optional, Sequence, Tuple

import numpy as np

Row = Tuple[str, Sequence[np.ndarray]]


def save_image_grid(rows: Sequence[Row],
                    out: str,
                    col_titles: Optional[Sequence[str]] = None,
                    title: Optional[str] = None,
                    cmap: str = 'jet',
                    cell_inches: float = 1.6,
                    dpi: int = 100) -> str:
    """Draw ``rows`` as a grid and save it as a PNG.

    Args:
        rows: ``(row title, images)`` per row. An image is ``(H, W, 3)``
            (uint8, or float in ``[0, 1]``) shown as is, or ``(H, W)``
            float in ``[0, 1]`` shown with ``cmap`` (scale it first, e.g.
            with :func:`~mmaction_tdx.visualization.features.scale_to_unit`).
            Rows may differ in length.
        out (str): PNG path; its folder is created.
        col_titles (Sequence[str], optional): Titles above the columns.
        title (str, optional): Title of the figure.
        cmap (str): Matplotlib colormap of single-channel images.
        cell_inches (float): Width of one image in inches.
        dpi (int): Resolution.

    Returns:
        str: ``out``.
    """
    import matplotlib
    matplotlib.use('Agg')  # files only; no display needed
    import matplotlib.pyplot as plt

    if not rows or not any(len(images) for _, images in rows):
        raise ValueError('Nothing to draw: no images.')
    num_cols = max(len(images) for _, images in rows)
    first = next(iter(img for _, images in rows for img in images))
    aspect = first.shape[0] / first.shape[1]
    fig, axes = plt.subplots(
        len(rows),
        num_cols,
        figsize=(cell_inches * num_cols + 1.2,
                 cell_inches * aspect * len(rows) + (0.5 if title else 0.2)),
        squeeze=False)
    for r, (row_title, images) in enumerate(rows):
        for c in range(num_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.axis('off')
                continue
            image = np.asarray(images[c])
            if image.ndim == 2:
                ax.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0)
            else:
                ax.imshow(image)
            if c == 0:
                ax.set_ylabel(row_title, fontsize=8)
            if r == 0 and col_titles is not None and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
