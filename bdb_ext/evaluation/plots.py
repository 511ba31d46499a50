"""Pictures of an evaluation: the CMC curve and a sheet of ranked lists, saved as PNG.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``), which renders with Agg and leaves
pyplot's global state and the user's chosen backend alone, so it works on headless machines and inside training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.image_dataset import read_image
from ..data.records import ImageRecord
from .reid_metrics import RankMetrics
from .results import ReIDResults

__all__ = ["plot_cmc", "plot_ranked_lists"]

_CORRECT, _WRONG = "#1a9850", "#d73027"


def _cmc_values(value: Any) -> np.ndarray:
    if isinstance(value, (ReIDResults, RankMetrics)):
        value = value.cmc
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    cmc = np.asarray(value, dtype=np.float64)
    if cmc.ndim != 1 or cmc.size == 0:
        raise ValueError(f"plot_cmc: a CMC must be a non-empty 1-D sequence, got shape {cmc.shape}")
    return cmc


def _save(figure: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=figure.dpi)
    return path


def plot_cmc(results_or_cmc: ReIDResults | RankMetrics | Sequence[float] | np.ndarray | torch.Tensor
             | Mapping[str, Any], path: str | os.PathLike, *, max_rank: int | None = None,
             title: str = "CMC curve") -> Path:
    """Save the CMC curve(s) as a PNG and return its path.

    ``results_or_cmc`` is a results object, a :class:`RankMetrics`, a CMC array (fractions in [0, 1]), or a mapping
    from a curve label to any of these to compare several runs in one plot.
    """
    from matplotlib.figure import Figure

    curves = results_or_cmc.items() if isinstance(results_or_cmc, Mapping) else [(None, results_or_cmc)]
    figure = Figure(figsize=(5, 4), dpi=100)
    ax = figure.add_subplot()
    for label, value in curves:
        cmc = _cmc_values(value)[:max_rank]
        ranks = np.arange(1, cmc.size + 1)
        name = f"{label} (R1 {100 * cmc[0]:.1f}%)" if label is not None else f"R1 {100 * cmc[0]:.1f}%"
        ax.plot(ranks, 100 * cmc, marker="o" if cmc.size <= 20 else None, markersize=3, label=name)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    figure.tight_layout()
    return _save(figure, path)


def plot_ranked_lists(distmat: torch.Tensor | np.ndarray, query_records: Sequence[ImageRecord],
                      gallery_records: Sequence[ImageRecord], path: str | os.PathLike, topk: int = 10,
                      num_queries: int = 8, *, query_indices: Sequence[int] | None = None,
                      exclude_same_camera: bool = True, image_size: tuple[int, int] = (128, 64)) -> Path:
    """Save a sheet with one row per query: the query image, then its ``topk`` nearest gallery images, framed green
    when the pid matches and red when not. Returns the path of the PNG.

    Args:
        distmat: (Q, G) distances between ``query_records`` and ``gallery_records``.
        num_queries: rows shown, spread evenly over the queries, unless ``query_indices`` names them.
        exclude_same_camera: hide what the metrics remove (same pid and camera, and junk pid -1), so the sheet shows
            the ranking that was scored.
        image_size: (height, width) each image is shown at.
    """
    from matplotlib.figure import Figure

    dist = torch.as_tensor(distmat).detach().cpu()
    if dist.dim() != 2 or dist.shape != (len(query_records), len(gallery_records)):
        raise ValueError(f"plot_ranked_lists: distmat must have shape ({len(query_records)}, "
                         f"{len(gallery_records)}) to match the records, got {tuple(dist.shape)}")
    if not isinstance(topk, int) or topk < 1:
        raise ValueError(f"plot_ranked_lists: topk must be a positive int, got {topk!r}")
    if query_indices is None:
        if not isinstance(num_queries, int) or num_queries < 1:
            raise ValueError(f"plot_ranked_lists: num_queries must be a positive int, got {num_queries!r}")
        count = min(num_queries, len(query_records))
        query_indices = np.linspace(0, len(query_records) - 1, count).round().astype(int).tolist()
    elif any(not 0 <= i < len(query_records) for i in query_indices):
        raise ValueError(f"plot_ranked_lists: query_indices must lie in 0..{len(query_records) - 1}")
    g_pids = torch.tensor([r.pid for r in gallery_records])
    g_cams = torch.tensor([r.camid for r in gallery_records])
    height, width = image_size

    def thumbnail(record: ImageRecord) -> np.ndarray:
        return np.asarray(read_image(record.path).resize((width, height)))

    figure = Figure(figsize=(1.1 * (topk + 1), 2.1 * len(query_indices)), dpi=100)
    axes = figure.subplots(len(query_indices), topk + 1, squeeze=False)
    for row, q in enumerate(query_indices):
        query = query_records[q]
        order = torch.argsort(dist[q], stable=True)
        if exclude_same_camera:
            removed = ((g_pids[order] == query.pid) & (g_cams[order] == query.camid)) | (g_pids[order] == -1)
            order = order[~removed]
        shown = order[:topk].tolist()
        cells = [(query, "query", "black")] + [
            (gallery_records[g], f"{rank}", _CORRECT if gallery_records[g].pid == query.pid else _WRONG)
            for rank, g in enumerate(shown, 1)]
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(cells):
                ax.set_axis_off()
                continue
            record, label, colour = cells[col]
            ax.imshow(thumbnail(record))
            ax.set_title(f"{label}\nid {record.pid}", fontsize=8)
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(1 if col == 0 else 3)
    figure.tight_layout()
    return _save(figure, path)
