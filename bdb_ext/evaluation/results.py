"""Result objects that print as a table and save as JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .reid_metrics import RankMetrics

__all__ = ["ReIDResults", "RecallResults"]


def _table(title: str, rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows)
    rule = "-" * (width + value_width + 3)
    return "\n".join([title, rule, *(f"{name:<{width}} | {value:>{value_width}}" for name, value in rows), rule])


def _write_json(data: dict[str, Any], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


@dataclass
class ReIDResults:
    """Re-ID evaluation: mAP, mINP and the CMC curve, with how they were computed.

    ``cmc[r]`` is the rank-(r + 1) accuracy; values are fractions in [0, 1] (the table prints percentages).
    """

    mAP: float
    mINP: float
    cmc: list[float]
    num_valid_queries: int
    num_queries: int
    dataset: str | None = None
    protocol: str = "market1501"
    reranked: bool = False
    ap_cutoff: int | None = None
    ranks: tuple[int, ...] = (1, 5, 10, 20)
    extra: dict[str, Any] = field(default_factory=dict)
    eval_protocol: str = "standard"  # "standard" or "official" (see bdb_ext.evaluation.protocols)
    flip: bool | None = None  # were the features flip-averaged (None: not recorded)

    @classmethod
    def from_metrics(cls, metrics: RankMetrics, **fields: Any) -> ReIDResults:
        """Wrap a :class:`RankMetrics` with descriptive fields (dataset, protocol, reranked, ...)."""
        return cls(mAP=metrics.mAP, mINP=metrics.mINP, cmc=[float(x) for x in np.asarray(metrics.cmc)],
                   num_valid_queries=metrics.num_valid_queries, num_queries=metrics.num_queries,
                   ap_cutoff=metrics.ap_cutoff, **fields)

    def rank(self, k: int) -> float:
        """Rank-k accuracy in [0, 1]."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank k must be in 1..{len(self.cmc)}, got {k}")
        return self.cmc[k - 1]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: the settings, mAP, mINP, rank-k for ``ranks``, and the whole CMC."""
        data: dict[str, Any] = {
            "dataset": self.dataset, "eval_protocol": self.eval_protocol, "flip": self.flip,
            "protocol": self.protocol, "reranked": self.reranked, "ap_cutoff": self.ap_cutoff, "mAP": self.mAP,
            "mINP": self.mINP,
        }
        data.update({f"rank-{k}": self.rank(k) for k in self.ranks if k <= len(self.cmc)})
        data.update({"num_valid_queries": self.num_valid_queries, "num_queries": self.num_queries,
                     "cmc": list(self.cmc), **self.extra})
        return data

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`as_dict` to ``path`` (parents created); returns the path."""
        return _write_json(self.as_dict(), path)

    def __str__(self) -> str:
        settings = [self.protocol] + (["re-ranked"] if self.reranked else [])
        settings += [f"AP@{self.ap_cutoff}"] if self.ap_cutoff else []
        settings += ["flip-averaged"] if self.flip else []
        settings += [f"{self.eval_protocol} protocol"] if self.eval_protocol != "standard" else []
        title = f"Results{f' on {self.dataset}' if self.dataset else ''} ({', '.join(settings)})"
        rows = [("mAP", f"{100 * self.mAP:.1f}%"), ("mINP", f"{100 * self.mINP:.1f}%")]
        rows += [(f"Rank-{k}", f"{100 * self.rank(k):.1f}%") for k in self.ranks if k <= len(self.cmc)]
        rows += [("valid queries", f"{self.num_valid_queries}/{self.num_queries}")]
        return _table(title, rows)


@dataclass
class RecallResults:
    """Metric-learning evaluation: ``recalls`` maps K to Recall@K in [0, 1]."""

    recalls: dict[int, float]
    dataset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    eval_protocol: str = "standard"  # "standard" or "official" (flip-averaged features)
    flip: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "eval_protocol": self.eval_protocol, "flip": self.flip,
                **{f"R@{k}": v for k, v in sorted(self.recalls.items())}, **self.extra}

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`as_dict` to ``path`` (parents created); returns the path."""
        return _write_json(self.as_dict(), path)

    def __str__(self) -> str:
        settings = ["Recall@K"] + (["flip-averaged"] if self.flip else [])
        settings += [f"{self.eval_protocol} protocol"] if self.eval_protocol != "standard" else []
        title = f"Results{f' on {self.dataset}' if self.dataset else ''} ({', '.join(settings)})"
        return _table(title, [(f"R@{k}", f"{100 * v:.1f}%") for k, v in sorted(self.recalls.items())])
