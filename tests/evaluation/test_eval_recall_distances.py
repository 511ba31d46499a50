"""recall_at_k (both forms) and pairwise_distances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bdb_ext.evaluation import pairwise_distances, recall_at_k, recall_at_k_query_gallery


def test_recall_hand_worked() -> None:
    # Points on a line, labels:        0    0    1     2     1
    points = torch.tensor([[0.0], [1.0], [10.0], [11.0], [30.0]])
    labels = [0, 0, 1, 2, 1]
    # Neighbours (self excluded): item 0 -> 1 (hit at 1); item 1 -> 0 (hit at 1);
    # item 2 -> 3, 1, 0, 4: first same label at 4; item 3 -> no other label 2: never;
    # item 4 -> 3, 2: hit at 2.
    assert recall_at_k(points, labels, ks=(1, 2, 4)) == {1: 2 / 5, 2: 3 / 5, 4: 4 / 5}
    assert recall_at_k(points, labels, ks=(1, 2, 4), metric="sqeuclidean", chunk_size=2) == \
        {1: 2 / 5, 2: 3 / 5, 4: 4 / 5}


def test_query_gallery_form_hand_worked() -> None:
    query = np.array([[0.0, 0.0], [5.0, 5.0]])
    gallery = np.array([[0.1, 0.0], [0.0, 0.3], [5.0, 5.2], [9.0, 9.0]])
    # Query 0 (label 7): nearest gallery labels 3, 7 -> hit at 2. Query 1 (label 3): nearest is label 3 -> hit at 1.
    got = recall_at_k_query_gallery(query, gallery, [7, 3], [3, 7, 3, 7], ks=(1, 2))
    assert got == {1: 0.5, 2: 1.0}


def brute_recall(emb: np.ndarray, labels: np.ndarray, ks, metric: str) -> dict[int, float]:
    n = len(labels)
    out = {}
    for k in ks:
        hits = 0
        for i in range(n):
            if metric == "cosine":
                a = emb / np.linalg.norm(emb, axis=1, keepdims=True)
                d = 1 - a @ a[i]
            else:
                d = np.linalg.norm(emb - emb[i], axis=1)
            order = [j for j in np.argsort(d, kind="stable") if j != i]
            hits += any(labels[j] == labels[i] for j in order[:k])
        out[k] = hits / n
    return out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(9, 40), classes=st.integers(2, 8),
       metric=st.sampled_from(["euclidean", "cosine"]))
def test_recall_against_brute_force(seed: int, n: int, classes: int, metric: str) -> None:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 5))
    labels = rng.integers(0, classes, n)
    assert recall_at_k(emb, labels, (1, 2, 4, 8), metric=metric, chunk_size=7) == \
        pytest.approx(brute_recall(emb, labels, (1, 2, 4, 8), metric))


def test_recall_errors() -> None:
    with pytest.raises(ValueError, match="ks holds 8 but there are only 4 other items"):
        recall_at_k(np.zeros((5, 2)), [0] * 5)
    with pytest.raises(ValueError, match="positive ints"):
        recall_at_k(np.zeros((5, 2)), [0] * 5, ks=(0,))
    with pytest.raises(ValueError, match=r"labels must have shape \(5,\)"):
        recall_at_k(np.zeros((5, 2)), [0] * 4, ks=(1,))


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
def test_distances_against_definitions(metric: str) -> None:
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(13, 6)), rng.normal(size=(29, 6))
    diff = q[:, None] - g[None]
    expected = {"sqeuclidean": (diff ** 2).sum(-1), "euclidean": np.sqrt((diff ** 2).sum(-1)),
                "cosine": 1 - (q / np.linalg.norm(q, axis=1, keepdims=True))
                @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T}[metric]
    got64 = pairwise_distances(q, g, metric, chunk_size=4)
    assert got64.dtype == torch.float64
    np.testing.assert_allclose(got64.numpy(), expected, atol=1e-10)
    got32 = pairwise_distances(torch.tensor(q, dtype=torch.float32), torch.tensor(g, dtype=torch.float16), metric)
    assert got32.dtype == torch.float32
    # float16 input: its rounding (2^-11 relative) moves these distances by ~1e-3 at most; the float32 BLAS
    # rounding, the part that differs between CPUs, is ~1e-6, far inside the tolerance on any machine.
    np.testing.assert_allclose(got32.numpy(), expected, rtol=2e-3, atol=2e-3)


def test_distance_of_identical_rows_is_zero_not_negative() -> None:
    x = torch.randn(50, 1536, generator=torch.Generator().manual_seed(0)) * 30
    d = pairwise_distances(x, x)
    # float32 cancellation leaves a diagonal at rounding level, but never below zero. How far above zero depends on
    # the order in which the BLAS sums the 1536 products, which differs between CPUs (AVX2 vs AVX-512 kernels, MKL
    # vs OpenBLAS): 4e-7 of the mean distance on an AMD EPYC; 2e-6 with plain sequential float32 accumulation, the
    # least accurate order a BLAS uses. 1e-5 holds for any order and still catches a wrong expansion (ratio ~1).
    assert d.min() >= 0 and d.diagonal().max() < 1e-5 * d.mean()


def test_distance_errors() -> None:
    with pytest.raises(ValueError, match="metric must be one of"):
        pairwise_distances(np.zeros((2, 3)), np.zeros((2, 3)), "manhattan")
    with pytest.raises(ValueError, match="feature sizes differ: 3 vs 4"):
        pairwise_distances(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        pairwise_distances(np.zeros((2, 3)), np.zeros((2, 3)), chunk_size=0)
