"""Evaluation at Market-1501 size: re-ID metrics and k-reciprocal re-ranking.

Problem: 3,368 queries x 15,913 gallery images, D = 1536 (the BDB feature), with Market-like labels (750 query ids
seen by 6 cameras, 751 gallery ids plus 2,798 distractors of pid 0) and random features clustered by id so that the
metrics and the re-ranking neighbourhoods look like a trained model's (mAP of roughly 0.5-0.8).

Cases (each records sizes, mAP and peak memory in ``extra_info``):
- distances+metrics: squared Euclidean distances from features, then CMC/mAP/mINP (target < 10 s on 2 CPU cores);
- metrics: CMC/mAP/mINP on a ready distance matrix;
- rerank-features / rerank-matrices: re-ranking from features (no G x G matrix held) and from the three distance
  matrices of the published interface (targets < 2 min and < 8 GiB on the CPU).

Sizes: a tenth of each side by default (a CI smoke run), Market size with BDB_BENCH_FULL=1 (and on CUDA).
A benchmark measures and reports; it asserts nothing about time.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch
from bench_utils import benchmark_devices, full_size_enabled, synchronized

from bdb_ext.evaluation import pairwise_distances, rank_metrics, re_ranking, re_ranking_features

MARKET = (3368, 15913, 1536)
SMALL = (337, 1591, 1536)


def market_like_problem(num_q: int, num_g: int, dim: int, seed: int = 0):
    """Features and labels shaped like Market-1501's test split."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    num_ids = max(2, round(751 * num_g / MARKET[1]))
    num_distractors = round(2798 * num_g / MARKET[1])
    g_pids = np.concatenate([rng.integers(1, num_ids + 1, num_g - num_distractors), np.zeros(num_distractors, int)])
    q_pids = rng.choice(np.unique(g_pids[g_pids > 0]), num_q)
    g_cams, q_cams = rng.integers(0, 6, num_g), rng.integers(0, 6, num_q)
    # Identity centres small against the per-image noise: in 1536 dimensions that gives realistic overlap.
    # Distractors (pid 0) are unrelated detections, each with its own centre; a shared centre would make them
    # artificial hubs that sit near every image.
    centres = 0.3 * torch.randn(num_ids + 1, dim, generator=gen)
    qf = centres[q_pids] + torch.randn(num_q, dim, generator=gen)
    gf = centres[g_pids] + torch.randn(num_g, dim, generator=gen)
    gf[g_pids == 0] += 0.3 * torch.randn(num_distractors, dim, generator=gen) - centres[0]
    return qf, gf, (torch.as_tensor(q_pids), torch.as_tensor(g_pids), torch.as_tensor(q_cams),
                    torch.as_tensor(g_cams))


class PeakMemory:
    """Peak resident memory of this process (CPU, sampled every 5 ms from /proc) or the CUDA allocator's peak, and
    the CPU time spent."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * 4096

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.005)

    def __enter__(self) -> PeakMemory:
        self._cpu_start = time.process_time()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak = self.rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # CPU seconds of all threads: on a shared machine, cpu_time / threads estimates the wall time it would take
        # on idle cores.
        self.cpu_time = time.process_time() - self._cpu_start
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.rss())


def _cases():
    for device in benchmark_devices():
        size = MARKET if full_size_enabled(device) else SMALL
        yield pytest.param(device, size, id=f"{device}-{size[0]}x{size[1]}x{size[2]}")


@pytest.fixture(scope="module")
def problems():
    cache = {}

    def get(device: str, size: tuple[int, int, int]):
        if (device, size) not in cache:
            qf, gf, labels = market_like_problem(*size)
            cache[(device, size)] = (qf.to(device), gf.to(device), tuple(x.to(device) for x in labels))
        return cache[(device, size)]

    return get


def _record(benchmark, device, size, memory, result=None, rounds=1, **extra) -> None:
    benchmark.extra_info.update({"device": device, "num_query": size[0], "num_gallery": size[1], "dim": size[2],
                                 "torch": torch.__version__, "threads": torch.get_num_threads(),
                                 "peak_memory_gib": round(memory.peak / 2**30, 3),
                                 "cpu_time_s_per_round": round(memory.cpu_time / rounds, 2),
                                 "load_average": os.getloadavg()[0],
                                 **extra})
    if result is not None:
        benchmark.extra_info.update({"mAP": round(result.mAP, 4), "rank1": round(float(result.cmc[0]), 4)})


@pytest.mark.parametrize(("device", "size"), list(_cases()))
def test_distances_and_metrics(benchmark, problems, device, size) -> None:
    qf, gf, labels = problems(device, size)

    def run():
        return rank_metrics(pairwise_distances(qf, gf), *labels)

    with PeakMemory(device) as memory:
        result = benchmark.pedantic(synchronized(run, device), rounds=3, iterations=1, warmup_rounds=0)
    _record(benchmark, device, size, memory, result, rounds=3)


@pytest.mark.parametrize(("device", "size"), list(_cases()))
def test_metrics(benchmark, problems, device, size) -> None:
    qf, gf, labels = problems(device, size)
    distmat = pairwise_distances(qf, gf)
    with PeakMemory(device) as memory:
        result = benchmark.pedantic(synchronized(lambda: rank_metrics(distmat, *labels), device), rounds=3,
                                    iterations=1)
    _record(benchmark, device, size, memory, result, rounds=3)


@pytest.mark.parametrize(("device", "size"), list(_cases()))
def test_rerank_features(benchmark, problems, device, size) -> None:
    qf, gf, labels = problems(device, size)
    with PeakMemory(device) as memory:
        distmat = benchmark.pedantic(synchronized(lambda: re_ranking_features(qf, gf), device), rounds=1,
                                     iterations=1)
    _record(benchmark, device, size, memory, rank_metrics(distmat, *labels),
            mAP_before=round(rank_metrics(pairwise_distances(qf, gf), *labels).mAP, 4))


@pytest.mark.parametrize(("device", "size"), list(_cases()))
def test_rerank_matrices(benchmark, problems, device, size) -> None:
    qf, gf, labels = problems(device, size)
    q_g, q_q = pairwise_distances(qf, gf, "euclidean"), pairwise_distances(qf, qf, "euclidean")
    g_g = pairwise_distances(gf, gf, "euclidean")  # 1 GiB in float32 at Market size: held by the caller
    with PeakMemory(device) as memory:
        distmat = benchmark.pedantic(synchronized(lambda: re_ranking(q_g, q_q, g_g), device), rounds=1,
                                     iterations=1)
    _record(benchmark, device, size, memory, rank_metrics(distmat, *labels),
            inputs_gib=round(sum(x.numel() * x.element_size() for x in (q_g, q_q, g_g)) / 2**30, 3))
