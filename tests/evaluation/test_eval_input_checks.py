"""Every evaluation entry point refuses NaN/inf features and distances (counting the rows), complex or boolean
matrices, and zero chunk sizes: a silent wrong metric is the worst defect an evaluation can have."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bdb_ext.evaluation import (
    cuhk03_rank_metrics,
    evaluate_recall,
    evaluate_reid,
    extract_features,
    pairwise_distances,
    rank_metrics,
    re_ranking,
    re_ranking_features,
    recall_at_k,
    recall_at_k_query_gallery,
)

NUM_Q, NUM_G, DIM = 4, 6, 3
Q_PIDS, G_PIDS = [0, 1, 2, 3], [0, 1, 2, 3, 0, 1]
Q_CAMS, G_CAMS = [0] * NUM_Q, [1] * NUM_G


def _features(rows: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, DIM, generator=torch.Generator().manual_seed(seed))


def _all(query, gallery):
    """Query and gallery rows as one set (numpy stays numpy), for the all-vs-all Recall@K."""
    return np.concatenate([query, gallery]) if isinstance(query, np.ndarray) else torch.cat([query, gallery])


# Each entry: (name, call taking (query features, gallery features) or a (Q, G) distance matrix).
FEATURE_CALLS: dict[str, Callable[[torch.Tensor, torch.Tensor], object]] = {
    "pairwise_distances": lambda q, g: pairwise_distances(q, g),
    "pairwise_distances cosine": lambda q, g: pairwise_distances(q, g, metric="cosine"),
    "recall_at_k": lambda q, g: recall_at_k(_all(q, g), Q_PIDS + G_PIDS, (1,)),
    "recall_at_k_query_gallery": lambda q, g: recall_at_k_query_gallery(q, g, Q_PIDS, G_PIDS, (1,)),
    "re_ranking_features": lambda q, g: re_ranking_features(q, g),
    "evaluate_reid": lambda q, g: evaluate_reid(q, g, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS),
    "evaluate_reid reranked": lambda q, g: evaluate_reid(q, g, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, rerank=True),
    "evaluate_reid cuhk03": lambda q, g: evaluate_reid(q, g, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, protocol="cuhk03"),
    "evaluate_recall": lambda q, g: evaluate_recall(_all(q, g), Q_PIDS + G_PIDS, (1,)),
    "evaluate_recall in-shop": lambda q, g: evaluate_recall(q, Q_PIDS, (1,), gallery=g, gallery_labels=G_PIDS),
}

DISTANCE_CALLS: dict[str, Callable[[torch.Tensor], object]] = {
    "rank_metrics": lambda d: rank_metrics(d, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS),
    "rank_metrics ap_cutoff": lambda d: rank_metrics(d, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, ap_cutoff=2),
    "cuhk03_rank_metrics": lambda d: cuhk03_rank_metrics(d, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS),
    "re_ranking q_g": lambda d: re_ranking(d, torch.zeros(NUM_Q, NUM_Q), torch.zeros(NUM_G, NUM_G)),
}


def test_the_reproducers_from_the_issue() -> None:
    # Both used to return plausible numbers: {1: 1.0} and mAP 0.51.
    with pytest.raises(ValueError, match=r"embeddings holds NaN or inf in 8 of 8 rows"):
        recall_at_k(torch.full((8, 4), float("nan")), [0, 1, 2, 3] * 2, (1,))
    with pytest.raises(ValueError, match=r"distmat holds NaN or inf in 4 of 4 rows"):
        rank_metrics(torch.full((4, 6), float("nan")), Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64, "numpy"])
@pytest.mark.parametrize("where", ["query", "gallery"])
@pytest.mark.parametrize("call", FEATURE_CALLS, ids=str)
def test_non_finite_features_are_refused(call: str, where: str, dtype, bad: float) -> None:
    query, gallery = _features(NUM_Q, 0), _features(NUM_G, 1)
    # One bad entry in one row: a partly broken feature matrix is the case that ranks plausibly.
    target = query if where == "query" else gallery
    target[2, 1] = bad
    query, gallery = ((x.numpy() if dtype == "numpy" else x.to(dtype)) for x in (query, gallery))
    with pytest.raises(ValueError, match=r"holds NaN or inf in 1 of \d+ rows"):
        FEATURE_CALLS[call](query, gallery)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("call", DISTANCE_CALLS, ids=str)
def test_non_finite_distances_are_refused(call: str, dtype: torch.dtype, bad: float) -> None:
    distmat = torch.rand(NUM_Q, NUM_G, generator=torch.Generator().manual_seed(2))
    distmat[[1, 3], 0] = bad
    with pytest.raises(ValueError, match=r"holds NaN or inf in 2 of 4 rows \(first: row 1\)"):
        DISTANCE_CALLS[call](distmat.to(dtype))


@pytest.mark.parametrize("matrix", ["q_q_dist", "g_g_dist"])
def test_re_ranking_refuses_non_finite_self_distances(matrix: str) -> None:
    inputs = {"q_g_dist": torch.rand(NUM_Q, NUM_G), "q_q_dist": torch.rand(NUM_Q, NUM_Q),
              "g_g_dist": torch.rand(NUM_G, NUM_G)}
    inputs[matrix][0, 0] = float("nan")
    with pytest.raises(ValueError, match=f"{matrix} holds NaN or inf in 1 of"):
        re_ranking(**inputs)


def test_finite_features_whose_distances_overflow_are_refused() -> None:
    # 1e20 is a finite float32, its square is not: the distances would be inf - inf = NaN.
    query = torch.full((NUM_Q, DIM), 1e20)
    with pytest.raises(ValueError, match=r"distance matrix .* overflowed: scale them down or pass float64"):
        pairwise_distances(query, _features(NUM_G, 1))
    with pytest.raises(ValueError, match="overflowed"):
        recall_at_k(torch.cat([query, _features(NUM_G, 1)]), Q_PIDS + G_PIDS, (1,))
    # In float64 the same features are fine.
    assert torch.isfinite(pairwise_distances(query.double(), _features(NUM_G, 1).double())).all()


class NaNAfterFirstImages(nn.Module):
    """A diverged model: NaN features for images whose first pixel is negative, finite ones otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x.flatten(1)[:, :DIM] * self.weight
        return torch.where(x.flatten(1)[:, :1] < 0, float("nan"), features)


def test_non_finite_features_from_extract_features_are_refused_by_the_metrics() -> None:
    images = torch.rand(NUM_Q + NUM_G, 3, 2, 2)
    images[[1, 7], 0, 0, 0] = -1.0
    loader = DataLoader(TensorDataset(images, torch.tensor(Q_PIDS + G_PIDS), torch.tensor(Q_CAMS + G_CAMS)),
                        batch_size=3)
    features, pids, camids = extract_features(NaNAfterFirstImages(), loader)
    assert features.isnan().any(dim=1).tolist() == [i in (1, 7) for i in range(NUM_Q + NUM_G)]
    with pytest.raises(ValueError, match=r"query holds NaN or inf in 1 of 4 rows \(first: row 1\)"):
        evaluate_reid(features[:NUM_Q], features[NUM_Q:], pids[:NUM_Q], pids[NUM_Q:], camids[:NUM_Q],
                      camids[NUM_Q:])
    with pytest.raises(ValueError, match=r"embeddings holds NaN or inf in 2 of 10 rows"):
        evaluate_recall(features, pids, (1,))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128, torch.bool])
def test_complex_or_boolean_matrices_are_refused(dtype: torch.dtype) -> None:
    # complex -> float used to drop the imaginary part with only a warning.
    distmat = (torch.rand(NUM_Q, NUM_G) + 1j * torch.rand(NUM_Q, NUM_G)) if dtype.is_complex else \
        torch.rand(NUM_Q, NUM_G) > 0.5
    with pytest.raises(TypeError, match=f"distmat must hold real numbers, got dtype {dtype}"):
        rank_metrics(distmat.to(dtype), Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(TypeError, match="query must hold real numbers"):
        pairwise_distances(torch.ones(2, 3, dtype=dtype), torch.ones(2, 3))
    with pytest.raises(TypeError, match="query_pids must hold integer ids"):
        rank_metrics(torch.rand(NUM_Q, NUM_G), torch.tensor(Q_PIDS, dtype=torch.complex64), G_PIDS, Q_CAMS, G_CAMS)


@pytest.mark.parametrize("value", [0, -1, 2.5, True, None])
def test_chunk_sizes_must_be_positive_ints(value) -> None:
    # chunk_size=0 used to fail with "range() arg 3 must not be zero".
    distmat, features = torch.rand(NUM_Q, NUM_G), _features(NUM_Q, 0)
    calls = {
        "rank_metrics": lambda: rank_metrics(distmat, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, chunk_size=value),
        "cuhk03_rank_metrics": lambda: cuhk03_rank_metrics(distmat, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, chunk_size=value),
        "recall_at_k": lambda: recall_at_k(features, Q_PIDS, (1,), chunk_size=value),
        "pairwise_distances": lambda: pairwise_distances(features, features, chunk_size=value),
        "re_ranking_features": lambda: re_ranking_features(features, features, chunk_size=value),
        "re_ranking_features pair_budget": lambda: re_ranking_features(features, features, pair_budget=value),
    }
    for name, call in calls.items():
        argument = "pair_budget" if "pair_budget" in name else "chunk_size"
        with pytest.raises(ValueError, match=f"{argument} must be a positive int, got {value!r}"):
            call()
