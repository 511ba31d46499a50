"""The synthetic data set (layout, naming, caching) and the demo's report."""

from __future__ import annotations

import dataclasses
import json
import re

from bdb_ext.data import Market1501
from bdb_ext.demo import GENERATOR_VERSION, ensure_synthetic_market, run_demo
from bdb_tiny import TINY_SPEC


def test_synthetic_set_in_market_layout_read_by_the_real_loader(tmp_path):
    root, cached = ensure_synthetic_market(TINY_SPEC, tmp_path)
    assert not cached and root.name.startswith(f"synthetic-market-v{GENERATOR_VERSION}-")
    names = [p.name for p in (root / "bounding_box_test").iterdir()]
    assert all(re.fullmatch(r"(-1|\d{4})_c[1-6]s1_\d{6}_01\.jpg", n) for n in names)
    assert any(n.startswith("-1_") for n in names) and any(n.startswith("0000_") for n in names)
    data = Market1501(root)
    assert data.num_train_pids == TINY_SPEC.num_train_ids
    test_pids = {r.pid for r in data.query}
    assert len(test_pids) == TINY_SPEC.num_test_ids
    assert not test_pids & {int(p.name[:4]) for p in (root / "bounding_box_train").iterdir()}
    for q in data.query:  # every query has a true match seen by another camera
        assert any(g.pid == q.pid and g.camid != q.camid for g in data.gallery)
    assert all(r.pid != -1 for r in data.gallery)  # junk dropped by the loader
    again, cached = ensure_synthetic_market(TINY_SPEC, tmp_path)
    assert cached and again == root
    other, _ = ensure_synthetic_market(dataclasses.replace(TINY_SPEC, seed=4), tmp_path)
    assert other != root


def test_demo_writes_a_report(tmp_path):
    report = run_demo(tmp_path / "report", tmp_path / "cache", spec=TINY_SPEC,
                      overrides={"epochs": 1, "height": 64, "width": 32, "batch_size": 16, "progress": False},
                      log=lambda m: None)
    files = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"metrics.json", "cmc.png", "ranked_lists.png", "dropped_region.png", "best.pt", "last.pt"} <= files
    stored = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert stored["rank-1"] == report["rank-1"] and 0 < stored["chance_rank-1"] < 1
    assert stored["config"]["backbone"] == "resnet18" and stored["data"]["train_ids"] == TINY_SPEC.num_train_ids
    for name in ("cmc.png", "ranked_lists.png", "dropped_region.png"):
        assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
