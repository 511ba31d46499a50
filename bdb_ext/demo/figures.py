"""The demo's picture of Batch DropBlock at work: the dropped rows on the images and on the feature map."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..data import IMAGENET_MEAN, IMAGENET_STD
from ..models import BDBNet

__all__ = ["plot_dropped_region"]


def plot_dropped_region(model: BDBNet, images: torch.Tensor, path: str | os.PathLike,
                        rect: torch.Tensor | None = None, titles: Sequence[str] | None = None) -> Path:
    """Save a PNG: for each image (top row) the block that Batch DropBlock removes, shaded; below, the BDB
    branch's feature map (channel mean of the map entering the drop) with the zeroed block drawn.

    Args:
        model: a BDBNet (its mode is kept).
        images: (B, 3, H, W) float, ImageNet-normalised, on the model's device; B = 4 to 8 reads best.
        rect: [top, left, rows, cols] on the feature map; default a fresh draw from the model's drop layer.
        titles: one caption per image.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, bdb_map = model.feature_maps(images)
            if rect is None:
                rect = model.drop_pool.draw_rect(bdb_map)
    finally:
        model.train(was_training)
    top, left, rows, cols = (int(v) for v in rect.tolist())
    maps = bdb_map.float().mean(1).cpu().numpy()  # (B, h, w)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    pictures = (images.detach().float().cpu() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    count, (height, width), (map_h, map_w) = images.shape[0], images.shape[2:], maps.shape[1:]
    sy, sx = height / map_h, width / map_w

    figure = Figure(figsize=(1.3 * count, 5.6), dpi=110)
    axes = figure.subplots(2, count, squeeze=False)
    for i in range(count):
        ax = axes[0, i]
        ax.imshow(pictures[i])
        ax.add_patch(Rectangle((left * sx - 0.5, top * sy - 0.5), cols * sx, rows * sy, facecolor="black",
                               alpha=0.55, edgecolor="red", linewidth=1.5))
        ax.set_title(titles[i] if titles else f"image {i}", fontsize=8)
        ax = axes[1, i]
        shown = maps[i].copy()
        ax.imshow(shown, cmap="viridis", vmin=float(maps.min()), vmax=float(maps.max()))
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), cols, rows, facecolor="none", edgecolor="red",
                               linewidth=2, hatch="//"))
        ax.set_title(f"map {map_h}x{map_w}", fontsize=8)
        for row in axes[:, i]:
            row.set_xticks([])
            row.set_yticks([])
    figure.suptitle(f"Batch DropBlock: rows {top}-{top + rows - 1} of {map_h} dropped for the whole batch",
                    fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
