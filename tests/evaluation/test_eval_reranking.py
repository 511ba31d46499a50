"""re_ranking against a straightforward numpy transcription of the published algorithm (Zhong et al., CVPR 2017,
the authors' re_ranking.py) on small data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bdb_ext.evaluation import re_ranking, re_ranking_features


def published_re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    """The published numpy algorithm, dense and one row at a time."""
    original_dist = np.concatenate([np.concatenate([q_q_dist, q_g_dist], axis=1),
                                    np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0)
    original_dist = np.power(original_dist, 2).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist).astype(np.int32)
    query_num = q_g_dist.shape[0]
    all_num = q_g_dist.shape[0] + q_g_dist.shape[1]
    half = int(np.around(k1 / 2.0)) + 1
    for i in range(all_num):
        forward = initial_rank[i, :k1 + 1]
        backward = initial_rank[forward, :k1 + 1]
        k_reciprocal = forward[np.where(backward == i)[0]]
        expansion = k_reciprocal
        for candidate in k_reciprocal:
            c_forward = initial_rank[candidate, :half]
            c_backward = initial_rank[c_forward, :half]
            c_reciprocal = c_forward[np.where(c_backward == candidate)[0]]
            if len(np.intersect1d(c_reciprocal, k_reciprocal)) > 2.0 / 3 * len(c_reciprocal):
                expansion = np.append(expansion, c_reciprocal)
        expansion = np.unique(expansion)
        weight = np.exp(-original_dist[i, expansion])
        V[i, expansion] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    inv_index = [np.where(V[:, i] != 0)[0] for i in range(all_num)]
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, all_num], dtype=np.float32)
        nonzero = np.where(V[i, :] != 0)[0]
        for j in nonzero:
            images = inv_index[j]
            temp_min[0, images] = temp_min[0, images] + np.minimum(V[i, j], V[images, j])
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]


def clustered_problem(seed: int, num_q: int, num_g: int, dim: int = 16, clusters: int = 10):
    """Features in clusters, so that k-reciprocal sets and their expansions are non-trivial."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    features = centres[rng.integers(0, clusters, num_q + num_g)] + 0.5 * rng.normal(size=(num_q + num_g, dim))
    dist = np.sqrt(((features[:, None] - features[None]) ** 2).sum(-1))
    return features, dist[:num_q, num_q:], dist[:num_q, :num_q], dist[num_q:, num_q:]


@pytest.mark.parametrize(("num_q", "num_g", "k1", "k2", "lam"),
                         [(25, 90, 20, 6, 0.3), (10, 40, 5, 3, 0.5), (30, 100, 20, 1, 0.3), (6, 12, 20, 6, 0.0),
                          (12, 60, 7, 6, 1.0)])
def test_matches_published_algorithm(num_q: int, num_g: int, k1: int, k2: int, lam: float) -> None:
    features, q_g, q_q, g_g = clustered_problem(num_q + num_g, num_q, num_g)
    # Why 2e-6 holds on any CPU: the matrices are built elementwise in numpy float64 (no BLAS), and both sides square
    # and normalise them elementwise, which rounds identically everywhere. The features form computes its float64
    # distances with a BLAS (machine-dependent at ~1e-15 relative) before rounding to float32: a neighbour order can
    # change only if two distances of a row lie within that, which continuous random features do not produce.
    expected = published_re_ranking(q_g, q_q, g_g, k1, k2, lam)
    got = re_ranking(torch.from_numpy(q_g), torch.from_numpy(q_q), torch.from_numpy(g_g), k1, k2, lam,
                     chunk_size=16, pair_budget=300)
    assert got.dtype == torch.float32 and got.shape == (num_q, num_g)
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-6)
    # numpy inputs, default blocking, and the features form agree as well.
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1, k2, lam).numpy(), expected, atol=2e-6)
    np.testing.assert_allclose(re_ranking_features(features[:num_q], features[num_q:], k1, k2, lam).numpy(),
                               expected, atol=2e-6)


def test_issue_reproducer_small_set_with_default_k() -> None:
    # k2 = 6 > Q + G = 5 used to raise "repeats must have the same size".
    query, gallery = torch.randn(2, 4), torch.randn(3, 4)
    got = re_ranking_features(query, gallery)
    assert got.shape == (2, 3) and torch.isfinite(got).all()


@pytest.mark.parametrize(("num_q", "num_g", "k1", "k2"),
                         [(2, 3, 20, 6), (1, 1, 20, 6), (3, 4, 5, 10), (2, 3, 1, 7), (4, 5, 8, 9), (3, 9, 30, 2)])
def test_k_larger_than_the_set_matches_published_slicing(num_q: int, num_g: int, k1: int, k2: int) -> None:
    # The published code slices its argsort with [:k1 + 1] and [:k2], which stop at the set size; k1 and k2 larger
    # than Q + G must give exactly that, and the same as k clamped to the set size.
    features, q_g, q_q, g_g = clustered_problem(num_q * num_g, num_q, num_g, clusters=2)
    expected = published_re_ranking(q_g, q_q, g_g, k1, k2)
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1, k2).numpy(), expected, atol=2e-6)
    np.testing.assert_allclose(re_ranking_features(features[:num_q], features[num_q:], k1, k2).numpy(), expected,
                               atol=2e-6)
    num = num_q + num_g
    clamped = re_ranking(q_g, q_q, g_g, k1, min(k2, num))
    assert torch.equal(re_ranking(q_g, q_q, g_g, k1, k2), clamped)
    if round(k1 / 2) + 1 >= num:
        # k1 only matters through slices of width k1 + 1 and round(k1 / 2) + 1: once both cover the whole set, a
        # larger k1 changes nothing.
        assert torch.equal(re_ranking(q_g, q_q, g_g, k1 + 100, k2), re_ranking(q_g, q_q, g_g, k1, k2))


def test_float32_inputs_with_rounding_asymmetry() -> None:
    # Distances from a matrix product are not exactly symmetric; the published code reads columns, so must we.
    _, q_g, q_q, g_g = clustered_problem(7, 20, 70)
    rng = np.random.default_rng(0)
    q_q = (q_q * (1 + 1e-3 * rng.random(q_q.shape))).astype(np.float32)
    g_g = (g_g * (1 + 1e-3 * rng.random(g_g.shape))).astype(np.float32)
    q_g = q_g.astype(np.float32)
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g).numpy(), published_re_ranking(q_g, q_q, g_g), atol=2e-6)


def test_improves_ranking_of_clustered_data() -> None:
    # Not a proof, but the reason re-ranking exists: neighbours of neighbours pull true matches forward.
    _, q_g, q_q, g_g = clustered_problem(3, 30, 120)
    reranked = re_ranking(q_g, q_q, g_g).numpy()
    nearest_before = np.argsort(q_g, axis=1)[:, :5]
    nearest_after = np.argsort(reranked, axis=1)[:, :5]
    assert not np.array_equal(nearest_before, nearest_after)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"q_q_dist must be \(2, 2\)"):
        re_ranking(np.zeros((2, 3)), np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="k1 must be a positive int"):
        re_ranking(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((3, 3)), k1=0)
    with pytest.raises(ValueError, match="lambda_value must be in"):
        re_ranking(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((3, 3)), lambda_value=2.0)
    with pytest.raises(ValueError, match="feature sizes differ"):
        re_ranking_features(np.zeros((2, 3)), np.zeros((4, 5)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_published_algorithm() -> None:
    _, q_g, q_q, g_g = clustered_problem(11, 20, 80)
    got = re_ranking(q_g, q_q, g_g, device="cuda")
    assert got.is_cuda
    np.testing.assert_allclose(got.cpu().numpy(), published_re_ranking(q_g, q_q, g_g), atol=2e-6)
