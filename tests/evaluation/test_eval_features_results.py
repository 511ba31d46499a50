"""extract_features, evaluate_reid / evaluate_recall, the results objects and the pictures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bdb_ext.data import ImageRecord
from bdb_ext.evaluation import (
    evaluate_recall,
    evaluate_reid,
    extract_features,
    pairwise_distances,
    plot_cmc,
    plot_ranked_lists,
    rank_metrics,
    re_ranking_features,
)


class RowSums(nn.Module):
    """Features = per-column sums of each image's first channel: flipping the image reverses them."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.dropout = nn.Dropout(0.5)  # must be inactive during extraction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x[:, 0].sum(dim=1) * self.scale)


def make_loader(n: int = 10, batch_size: int = 4) -> tuple[DataLoader, torch.Tensor]:
    images = torch.arange(n * 3 * 2 * 5, dtype=torch.float32).reshape(n, 3, 2, 5)
    data = TensorDataset(images, torch.arange(n), torch.arange(n) % 3)
    return DataLoader(data, batch_size=batch_size), images


def test_extract_features_batches_modes_and_flip() -> None:
    model = RowSums().train()
    loader, images = make_loader()
    features, pids, camids = extract_features(model, loader)
    assert model.training  # restored
    assert features.shape == (10, 5) and features.dtype == torch.float32
    assert torch.equal(features, images[:, 0].sum(dim=1))
    assert not features.requires_grad
    features.mul_(1.0)  # ordinary tensors: callers may normalise in place
    assert pids.tolist() == list(range(10)) and camids.tolist() == [i % 3 for i in range(10)]
    flipped, _, _ = extract_features(model, loader, flip=True)
    expected = (images[:, 0].sum(dim=1) + images[:, 0].sum(dim=1).flip(-1)) / 2
    assert torch.allclose(flipped, expected)
    # Autocast bf16 kernels differ between CPUs (AMX, AVX512-BF16, emulated); rtol 2e-2 is ~5 bf16 ulps, and the
    # sum and product of RowSums are not even on autocast's bf16 list.
    low, _, _ = extract_features(model, loader, device="cpu", amp_dtype=torch.bfloat16, progress=True)
    assert low.dtype == torch.float32 and torch.allclose(low, features, rtol=2e-2)


def test_extract_features_errors() -> None:
    loader, _ = make_loader()
    with pytest.raises(TypeError, match=r"must return a \(batch, dim\) tensor"):
        extract_features(nn.Identity(), loader)
    with pytest.raises(TypeError, match="yield \\(images, pids, camids\\)"):
        extract_features(RowSums(), [torch.zeros(2, 3, 2, 5)])
    with pytest.raises(ValueError, match="yielded no batches"):
        extract_features(RowSums(), [])


def random_reid(seed: int = 0, num_q: int = 30, num_g: int = 90, dim: int = 8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, dim))
    q_pids, g_pids = rng.integers(0, 10, num_q), rng.integers(0, 10, num_g)
    qf = torch.tensor(centres[q_pids] + 0.8 * rng.normal(size=(num_q, dim)), dtype=torch.float32)
    gf = torch.tensor(centres[g_pids] + 0.8 * rng.normal(size=(num_g, dim)), dtype=torch.float32)
    return qf, gf, q_pids, g_pids, rng.integers(0, 3, num_q), rng.integers(0, 3, num_g)


def test_evaluate_reid_and_results_object(tmp_path: Path) -> None:
    qf, gf, *labels = random_reid()
    # Every comparison below is between two computations on the same machine (equal whatever the BLAS rounds), or,
    # for AP@5 < AP, true for any ranking: each query has ~9 matches among 90, so some lie beyond rank 5.
    results, distmat = evaluate_reid(qf, gf, *labels, dataset="toy", return_distmat=True)
    direct = rank_metrics(pairwise_distances(qf, gf), *labels)
    assert torch.equal(distmat, pairwise_distances(qf, gf))
    assert results.mAP == direct.mAP and results.cmc == direct.cmc.tolist()
    text = str(results)
    assert "Results on toy (market1501)" in text
    assert f"Rank-1        | {100 * direct.cmc[0]:5.1f}%" in text
    assert f"mAP           | {100 * direct.mAP:5.1f}%" in text
    path = results.to_json(tmp_path / "out" / "results.json")
    loaded = json.loads(path.read_text())
    assert loaded["mAP"] == direct.mAP and loaded["rank-5"] == direct.cmc[4] and len(loaded["cmc"]) == 50
    assert loaded == results.as_dict()

    reranked = evaluate_reid(qf, gf, *labels, rerank=True)
    assert reranked.reranked and "re-ranked" in str(reranked)
    assert reranked.mAP == rank_metrics(re_ranking_features(qf, gf), *labels).mAP
    truncated = evaluate_reid(qf, gf, *labels, ap_cutoff=5)
    assert truncated.mAP < results.mAP and "AP@5" in str(truncated)
    classic = evaluate_reid(qf, gf, *labels, protocol="cuhk03")
    assert classic.protocol == "cuhk03" and classic.mAP == results.mAP
    with pytest.raises(ValueError, match="protocol must be one of"):
        evaluate_reid(qf, gf, *labels, protocol="duke")


def test_evaluate_recall_results(tmp_path: Path) -> None:
    emb = torch.tensor([[0.0], [1.0], [10.0], [11.0], [30.0]])
    results = evaluate_recall(emb, [0, 0, 1, 2, 1], ks=(1, 2, 4), dataset="line")
    assert results.recalls == {1: 0.4, 2: 0.6, 4: 0.8}
    assert "R@2 | 60.0%" in str(results)
    assert json.loads(results.to_json(tmp_path / "r.json").read_text()) == {
        "dataset": "line", "eval_protocol": "standard", "flip": None, "R@1": 0.4, "R@2": 0.6, "R@4": 0.8}
    inshop = evaluate_recall(emb[:2], [1, 2], ks=(1,), gallery=emb[2:], gallery_labels=[1, 2, 2])
    assert inshop.recalls == {1: 0.5}  # both queries are nearest to 10.0 (label 1): a hit for query 0 only
    with pytest.raises(ValueError, match="pass both gallery and gallery_labels"):
        evaluate_recall(emb, [0] * 5, gallery=emb)


def colour_pixels(path: Path, rgb: tuple[int, int, int]) -> int:
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(rgb)).sum(-1) < 40).sum())


def test_plot_cmc(tmp_path: Path) -> None:
    qf, gf, *labels = random_reid()
    results = evaluate_reid(qf, gf, *labels)
    path = plot_cmc(results, tmp_path / "plots" / "cmc.png")
    assert Image.open(path).format == "PNG"
    plot_cmc({"plain": results, "curve": np.linspace(0.5, 1, 20), "tensor": torch.ones(5)}, tmp_path / "two.png",
             max_rank=10)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        plot_cmc([], tmp_path / "bad.png")


def test_plot_ranked_lists_frames_matches_green_and_mistakes_red(tmp_path: Path) -> None:
    def record(name: str, pid: int, cam: int, shade: int) -> ImageRecord:
        path = tmp_path / name
        Image.new("RGB", (16, 32), (shade, shade, shade)).save(path)
        return ImageRecord(str(path), pid, cam)

    queries = [record("q.png", 1, 0, 100)]
    gallery = [record("g0.png", 1, 0, 90), record("g1.png", 1, 1, 110), record("g2.png", 2, 1, 120),
               record("g3.png", -1, 1, 130)]
    distmat = np.array([[0.1, 0.2, 0.3, 0.05]])
    only_correct = plot_ranked_lists(distmat, queries, gallery, tmp_path / "one.png", topk=1)
    # g3 (junk) and g0 (same camera) are hidden, so the single shown image is the correct g1.
    assert colour_pixels(only_correct, (0x1A, 0x98, 0x50)) > 50
    assert colour_pixels(only_correct, (0xD7, 0x30, 0x27)) == 0
    both = plot_ranked_lists(distmat, queries, gallery, tmp_path / "two.png", topk=2)
    assert colour_pixels(both, (0xD7, 0x30, 0x27)) > 50
    with pytest.raises(ValueError, match=r"distmat must have shape \(1, 4\)"):
        plot_ranked_lists(distmat.T, queries, gallery, tmp_path / "bad.png")
