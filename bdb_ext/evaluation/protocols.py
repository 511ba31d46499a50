"""The two evaluation protocols: bdb_ext's standard one and the official BDB code's, and both side by side.

- ``"standard"`` (the default): torchreid / Market-1501-kit metrics: AP over the full ranking, CMC reported at ranks
  1/5/10/20; test features flip-averaged only if asked (``eval_flip``), AP truncated only if asked (``ap_cutoff``).
- ``"official"``: what the official evaluator (``trainers/evaluator.py`` of daizuozhuo/batch-dropblock-network, at the
  commits behind the published numbers) computed: every test feature averaged with its mirror image's, squared
  Euclidean distances, AP summed over the top 50 ranks but divided by all matches (``eval_func_gpu``, max_rank 50),
  CMC at ranks 1/2/4/5/8/10/16/20. Same-id same-camera gallery images are removed in both. For metric-learning data
  sets "official" means flip-averaged features with the usual Recall@K.
- ``"both"``: both from one feature pass, printed side by side (:class:`ProtocolComparison`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .results import RecallResults, ReIDResults, _table, _write_json

__all__ = ["EVAL_PROTOCOLS", "OFFICIAL_AP_CUTOFF", "OFFICIAL_RANKS", "STANDARD_RANKS", "check_eval_protocol",
           "ProtocolComparison"]

EVAL_PROTOCOLS = ("standard", "official", "both")
#: The official evaluator's AP cut-off (its ``max_rank``) and printed CMC ranks.
OFFICIAL_AP_CUTOFF = 50
OFFICIAL_RANKS = (1, 2, 4, 5, 8, 10, 16, 20)
STANDARD_RANKS = (1, 5, 10, 20)


def check_eval_protocol(name: object) -> str:
    """``name`` if it is one of :data:`EVAL_PROTOCOLS`, else a clear error."""
    if name not in EVAL_PROTOCOLS:
        raise ValueError(f"eval_protocol must be one of {EVAL_PROTOCOLS}, got {name!r}")
    return name


@dataclass
class ProtocolComparison:
    """The same features scored under both protocols (``--eval-protocol both``).

    ``as_dict`` is the official results' dict (so ``best_metric`` "rank-1" or "mAP" means the official numbers, those
    the papers report) with ``eval_protocol`` "both" and the standard results' dict under ``"standard"``.
    """

    official: ReIDResults | RecallResults
    standard: ReIDResults | RecallResults

    @property
    def dataset(self) -> str | None:
        return self.official.dataset

    def as_dict(self) -> dict[str, Any]:
        return {**self.official.as_dict(), "eval_protocol": "both", "standard": self.standard.as_dict()}

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`as_dict` to ``path`` (parents created); returns the path."""
        return _write_json(self.as_dict(), path)

    def __str__(self) -> str:
        title = f"Results{f' on {self.dataset}' if self.dataset else ''} (standard | official)"
        rows = [("", f"{'standard':>9} | {'official':>9}")]
        if isinstance(self.official, ReIDResults):
            std, off = self.standard, self.official
            rows += [("flip-averaged", f"{_yes(std.flip):>9} | {_yes(off.flip):>9}"),
                     ("AP cut-off", f"{_cutoff(std.ap_cutoff):>9} | {_cutoff(off.ap_cutoff):>9}"),
                     ("mAP", _pair(std.mAP, off.mAP)), ("mINP", _pair(std.mINP, off.mINP))]
            ranks = sorted(set(std.ranks) | set(off.ranks))
            rows += [(f"Rank-{k}", _pair(std.rank(k), off.rank(k))) for k in ranks
                     if k <= min(len(std.cmc), len(off.cmc))]
        else:
            rows += [("flip-averaged", f"{_yes(self.standard.flip):>9} | {_yes(self.official.flip):>9}")]
            rows += [(f"R@{k}", _pair(self.standard.recalls[k], self.official.recalls[k]))
                     for k in sorted(self.official.recalls)]
        return _table(title, rows)


def _pair(standard: float, official: float) -> str:
    return f"{100 * standard:>8.1f}% | {100 * official:>8.1f}%"


def _yes(flag: bool | None) -> str:
    return "?" if flag is None else ("yes" if flag else "no")


def _cutoff(cutoff: int | None) -> str:
    return "none" if cutoff is None else str(cutoff)
