"""Recall@K for metric learning: the fraction of queries with at least one same-class item among their K nearest."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ._inputs import LabelsLike, as_labels, as_tensor, positive_int
from .distances import METRICS, distances_of_checked

__all__ = ["recall_at_k", "recall_at_k_query_gallery"]


def _check_ks(ks: Sequence[int], limit: int, what: str) -> list[int]:
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Sequence | np.ndarray):
        raise TypeError(f"ks must be a sequence of positive ints, got {type(ks).__name__}")
    ks = list(ks)
    if not ks or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive ints, got {ks!r}")
    if max(ks) > limit:
        raise ValueError(f"ks holds {max(ks)} but there are only {limit} {what}")
    return [int(k) for k in ks]


def _recall(query: torch.Tensor, gallery: torch.Tensor, q_labels: torch.Tensor, g_labels: torch.Tensor,
            ks: list[int], metric: str, chunk_size: int, exclude_self: bool) -> dict[int, float]:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    chunk_size = positive_int(chunk_size, "chunk_size")
    # Squared Euclidean ranks exactly as Euclidean and skips the square root.
    metric = "sqeuclidean" if metric == "euclidean" else metric
    hits = torch.zeros(len(ks), dtype=torch.long)
    k_max = max(ks)
    for start in range(0, query.shape[0], chunk_size):
        dist = distances_of_checked(query[start:start + chunk_size], gallery, metric, chunk_size)
        if exclude_self:
            rows = torch.arange(dist.shape[0], device=dist.device)
            dist[rows, rows + start] = float("inf")
        nearest = torch.topk(dist, k_max, dim=1, largest=False, sorted=True).indices
        match = g_labels[nearest] == q_labels[start:start + chunk_size].unsqueeze(1)
        found_by = torch.cummax(match.int(), dim=1).values  # found_by[:, k - 1]: a match within the top k
        hits += found_by[:, [k - 1 for k in ks]].sum(0).cpu()
    return {k: float(h) / query.shape[0] for k, h in zip(ks, hits.tolist(), strict=True)}


def recall_at_k(embeddings: torch.Tensor | np.ndarray, labels: LabelsLike, ks: Sequence[int] = (1, 2, 4, 8),
                *, metric: str = "euclidean", chunk_size: int = 1024) -> dict[int, float]:
    """Recall@K with every item as a query against all the others (the CUB, Cars196 and SOP protocol).

    Args:
        embeddings: (N, D) features; labels: (N,) class ids.
        ks: the K values (each at most N - 1).
        metric: "euclidean" (default), "sqeuclidean" (same ranking) or "cosine".
        chunk_size: queries per step; memory is about chunk_size x N floats.

    Returns:
        ``{k: recall}`` with recall in [0, 1].
    """
    embeddings = as_tensor(embeddings, "embeddings", 2)
    labels = as_labels(labels, "labels", embeddings.shape[0], embeddings.device)
    ks = _check_ks(ks, embeddings.shape[0] - 1, "other items")
    return _recall(embeddings, embeddings, labels, labels, ks, metric, chunk_size, exclude_self=True)


def recall_at_k_query_gallery(query: torch.Tensor | np.ndarray, gallery: torch.Tensor | np.ndarray,
                              query_labels: LabelsLike, gallery_labels: LabelsLike,
                              ks: Sequence[int] = (1, 10, 20, 30, 40, 50), *, metric: str = "euclidean",
                              chunk_size: int = 1024) -> dict[int, float]:
    """Recall@K of (Q, D) queries against a separate (G, D) gallery (the In-Shop protocol).

    Returns ``{k: recall}``: the fraction of queries with a gallery item of their label among the k nearest.
    """
    query = as_tensor(query, "query", 2)
    gallery = as_tensor(gallery, "gallery", 2, device=query.device)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(f"recall_at_k_query_gallery: query and gallery feature sizes differ: {query.shape[1]} vs "
                         f"{gallery.shape[1]}")
    q_labels = as_labels(query_labels, "query_labels", query.shape[0], query.device)
    g_labels = as_labels(gallery_labels, "gallery_labels", gallery.shape[0], query.device)
    ks = _check_ks(ks, gallery.shape[0], "gallery items")
    return _recall(query, gallery, q_labels, g_labels, ks, metric, chunk_size, exclude_self=False)
