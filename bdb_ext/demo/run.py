"""``bdb-ext demo``: draw (or reuse) the synthetic data set, train a small BDBNet, evaluate, write a report."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..configs import load_preset
from ..data import ImageDataset, Market1501
from ..engine import Trainer, TrainConfig, config_from_dict, evaluate
from ..engine.loaders import test_transform
from ..evaluation import plot_cmc, plot_ranked_lists
from .figures import plot_dropped_region
from .synthetic import SyntheticSpec, ensure_synthetic_market

__all__ = ["demo_config", "run_demo", "chance_rank1"]


def demo_config(output_dir: str | os.PathLike = "bdb_demo", overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The "demo" preset with ``output_dir`` and any field overrides applied."""
    fields = {**load_preset("demo"), "output_dir": str(output_dir), **(overrides or {})}
    return config_from_dict(fields)


def chance_rank1(distmat: torch.Tensor, q_pids: list[int], g_pids: list[int], q_cams: list[int],
                 g_cams: list[int]) -> float:
    """Rank-1 a random ranking would reach: the mean over queries of the share of true matches among the gallery
    images the protocol keeps."""
    q_p, g_p = np.asarray(q_pids)[:, None], np.asarray(g_pids)[None, :]
    q_c, g_c = np.asarray(q_cams)[:, None], np.asarray(g_cams)[None, :]
    keep = ~((q_p == g_p) & (q_c == g_c)) & (g_p != -1)
    hits = (q_p == g_p) & keep
    return float(np.mean(hits.sum(1) / np.maximum(keep.sum(1), 1)))


def run_demo(output_dir: str | os.PathLike = "bdb_demo", data_dir: str | os.PathLike | None = None,
             spec: SyntheticSpec | None = None, overrides: dict[str, Any] | None = None,
             log=print) -> dict[str, Any]:
    """Run the whole demo and return the metrics written to ``output_dir/metrics.json``.

    Args:
        output_dir: the report folder (metrics.json, cmc.png, ranked_lists.png, dropped_region.png, best.pt,
            last.pt, metrics.jsonl/csv).
        data_dir: where the synthetic data set is cached (default ~/.cache/bdb_ext/demo).
        spec: the synthetic data set to draw (default :class:`SyntheticSpec`()).
        overrides: TrainConfig fields replacing the demo preset's (e.g. {"epochs": 2}).
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    spec = spec or SyntheticSpec()
    root, cached = ensure_synthetic_market(spec, data_dir)
    data_seconds = time.perf_counter() - started
    log(f"synthetic data set {'reused from' if cached else 'drawn into'} {root} ({data_seconds:.1f} s)")
    dataset = Market1501(root)
    log(dataset.summary())

    config = demo_config(output_dir, {"data_root": str(root), **(overrides or {})})
    trainer = Trainer(config, dataset, log=log)
    train_started = time.perf_counter()
    trainer.fit()
    train_seconds = time.perf_counter() - train_started

    results, distmat = evaluate(trainer.model, dataset, config, trainer.device, return_distmat=True)
    chance = chance_rank1(distmat, [r.pid for r in dataset.query], [r.pid for r in dataset.gallery],
                          [r.camid for r in dataset.query], [r.camid for r in dataset.gallery])
    plot_cmc(results, output_dir / "cmc.png", max_rank=20, title="CMC on the synthetic Market-layout set")
    plot_ranked_lists(distmat, dataset.query, dataset.gallery, output_dir / "ranked_lists.png", topk=8,
                      num_queries=6, image_size=(config.height, config.width))
    probe = ImageDataset(dataset.query[:: max(1, len(dataset.query) // 6)][:6], test_transform(config))
    images = torch.stack([probe[i][0] for i in range(len(probe))]).to(trainer.device)
    plot_dropped_region(trainer.model, images, output_dir / "dropped_region.png",
                        titles=[f"id {r.pid}" for r in probe.records])

    total_seconds = time.perf_counter() - started
    scores = results.as_dict()
    report = {
        **scores,
        "chance_rank-1": chance,
        "device": str(trainer.device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seconds": {"data": round(data_seconds, 1), "train": round(train_seconds, 1),
                    "total": round(total_seconds, 1)},
        "data": {"root": str(root), "cached": cached, "train_ids": dataset.num_train_pids,
                 "train_images": len(dataset.train), "query_images": len(dataset.query),
                 "gallery_images": len(dataset.gallery)},
        "config": config.to_dict(),
    }
    (output_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log(str(results))
    log(f"rank-1 {100 * scores['rank-1']:.1f}% (chance {100 * chance:.1f}%), mAP {100 * scores['mAP']:.1f}%, "
        f"mINP {100 * scores['mINP']:.1f}% in {total_seconds:.0f} s on {trainer.device}; report in {output_dir}/")
    return report
