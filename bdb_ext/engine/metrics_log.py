"""Metrics logging: one JSON object per line, a CSV with a fixed header, and TensorBoard when asked."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from ..distributed import is_main_process

__all__ = ["MetricsLogger", "CSV_COLUMNS"]

#: Columns of metrics.csv; records carry a subset (train rows have no rank metrics and vice versa).
CSV_COLUMNS = ("kind", "epoch", "step", "loss", "triplet_global", "triplet_bdb", "ce_global", "ce_bdb", "lr",
               "img_per_s", "seconds", "skipped", "mAP", "mINP", "rank-1", "rank-5", "rank-10", "rank-20", "R@1")


class MetricsLogger:
    """Appends records to ``folder/metrics.jsonl`` and ``folder/metrics.csv`` (and TensorBoard scalars).

    Appending (not truncating) keeps the history of a resumed run in the same files. Only rank 0 writes.
    """

    def __init__(self, folder: str | os.PathLike, tensorboard: bool = False) -> None:
        self.folder = Path(folder)
        self.enabled = is_main_process()
        self._writer = None
        if not self.enabled:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.folder / "metrics.jsonl"
        self.csv_path = self.folder / "metrics.csv"
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ImportError("tensorboard=True needs the tensorboard package (pip install "
                                  "'bdb_ext[train]' or pip install tensorboard)") from error
            self._writer = SummaryWriter(str(self.folder / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        """Write one record (numbers and strings); ``kind`` and ``step`` place it."""
        if not self.enabled:
            return
        with self.jsonl_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        new_csv = not self.csv_path.exists()
        with self.csv_path.open("a", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            if new_csv:
                writer.writeheader()
            writer.writerow(record)
        if self._writer is not None:
            kind, step = record.get("kind", "train"), int(record.get("step", 0))
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("epoch", "step"):
                    self._writer.add_scalar(f"{kind}/{key}", value, step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
