"""Pairwise distances between feature sets, computed in row chunks to bound memory."""

from __future__ import annotations

import torch

from ._inputs import as_tensor, check_finite, positive_int

__all__ = ["pairwise_distances", "METRICS"]

METRICS = ("sqeuclidean", "euclidean", "cosine")


def pairwise_distances(query: torch.Tensor, gallery: torch.Tensor, metric: str = "sqeuclidean",
                       chunk_size: int = 4096) -> torch.Tensor:
    """Distances between every query row and every gallery row.

    Args:
        query: (Q, D) features; gallery: (G, D) features (numpy arrays accepted). Float64 stays float64, other
            dtypes are computed in float32.
        metric: "sqeuclidean" (what BDB ranks with), "euclidean", or "cosine" (1 - cosine similarity).
        chunk_size: query rows per step; the extra memory is about chunk_size x G elements.

    Returns:
        (Q, G) tensor on the inputs' device, float32 (float64 if either input is float64). Squared distances are
        clamped at 0 to remove negative rounding noise from the ||q||^2 + ||g||^2 - 2 q.g expansion.
    """
    if metric not in METRICS:
        raise ValueError(f"pairwise_distances: metric must be one of {METRICS}, got {metric!r}")
    chunk_size = positive_int(chunk_size, "pairwise_distances: chunk_size")
    query = as_tensor(query, "query", 2)
    gallery = as_tensor(gallery, "gallery", 2, device=query.device)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(f"pairwise_distances: query and gallery feature sizes differ: {query.shape[1]} vs "
                         f"{gallery.shape[1]}")
    return distances_of_checked(query, gallery, metric, chunk_size)


def distances_of_checked(query: torch.Tensor, gallery: torch.Tensor, metric: str, chunk_size: int) -> torch.Tensor:
    """:func:`pairwise_distances` of inputs that :func:`as_tensor` already checked (callers that compute distances
    block by block check their features once, not once per block). The result is checked to be finite: finite
    float32 features above about 1e19 overflow when squared."""
    dtype = torch.promote_types(query.dtype, gallery.dtype)
    query, gallery = query.to(dtype), gallery.to(dtype)
    out = torch.empty(query.shape[0], gallery.shape[0], dtype=dtype, device=query.device)

    if metric == "cosine":
        query = torch.nn.functional.normalize(query, dim=1)
        gallery = torch.nn.functional.normalize(gallery, dim=1)
        for start in range(0, query.shape[0], chunk_size):
            chunk = out[start:start + chunk_size]
            torch.matmul(query[start:start + chunk_size], gallery.T, out=chunk)
            chunk.neg_().add_(1.0)
        return _checked(out)

    gallery_sq = gallery.square().sum(dim=1)
    for start in range(0, query.shape[0], chunk_size):
        q = query[start:start + chunk_size]
        chunk = out[start:start + chunk_size]
        torch.addmm(gallery_sq.unsqueeze(0), q, gallery.T, beta=1.0, alpha=-2.0, out=chunk)
        chunk.add_(q.square().sum(dim=1, keepdim=True)).clamp_(min=0.0)
        if metric == "euclidean":
            chunk.sqrt_()
    return _checked(out)


def _checked(distances: torch.Tensor) -> torch.Tensor:
    return check_finite(distances, "the distance matrix of the query and gallery features",
                        "; the features are finite, so they overflowed: scale them down or pass float64")
