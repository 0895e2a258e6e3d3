"""Figures: image grids and plots as PNG files (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .runs import atomic_write_bytes  # noqa: E402

GRID_IMAGES = 16  # how many fixed test images a grid shows


def grid_indices(n_images: int, count: int = GRID_IMAGES, seed: int = 0) -> list[int]:
    """`count` fixed, spread-out image indices of a split of n_images (the same for every model)."""
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n_images, generator=g)[:count].tolist())


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Render a matplotlib figure to PNG atomically and close it; returns the path."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def image_grid(rows: list[torch.Tensor], image_shape: tuple[int, int], path: str | Path,
               row_labels: list[str] | None = None, title: str | None = None) -> Path:
    """Save a grid: each entry of `rows` is (K, D) images in [0, 1] drawn as one row of K images
    (e.g. originals above reconstructions, or clean / noisy / denoised). Returns the PNG path."""
    k = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), k, figsize=(0.62 * k + 0.9, 0.66 * len(rows) + 0.3), squeeze=False)
    for r, images in enumerate(rows):
        arr = images.detach().float().clamp(0, 1).cpu().numpy().reshape(-1, *image_shape)
        for c in range(k):
            ax = axes[r][c]
            ax.imshow(arr[c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        if row_labels:
            axes[r][0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(wspace=0.04, hspace=0.04)
    return save_figure(fig, path)
