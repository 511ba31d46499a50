"""In-Shop Clothes Retrieval with its standard partition (3,997 train items; 14,218 query and 12,612 gallery
images of 3,985 other items)."""

from __future__ import annotations

import os

from ..records import ImageRecord
from ._lists import read_rows
from .base import MetricLearningDataset, resolve_root

__all__ = ["InShop"]

_PARTITION = "Eval/list_eval_partition.txt"
_STATUSES = ("train", "query", "gallery")


class InShop(MetricLearningDataset):
    """In-Shop: ``root`` (or ``root/InShop``, ``root/In-shop Clothes Retrieval Benchmark``) holds
    ``Eval/list_eval_partition.txt`` (a count line, a header line, then ``img/... id_XXXXXXXX train|query|gallery``)
    and ``img/``. Item ids become integers; ``test`` is query + gallery."""

    name = "inshop"

    def __init__(self, root: str | os.PathLike) -> None:
        base = resolve_root(root, "InShop", (_PARTITION, "img"),
                            ("InShop", "inshop", "In-shop Clothes Retrieval Benchmark"))
        self.root = base
        partition = base / _PARTITION
        with open(partition, encoding="utf-8") as handle:
            first = handle.readline().strip()
        if not first.isdigit():
            raise ValueError(f"InShop: the first line of {str(partition)!r} must be the image count, got {first!r}")
        splits: dict[str, list[ImageRecord]] = {s: [] for s in _STATUSES}
        for rel, item, status in read_rows(partition, 3, "InShop", "<image path> <item id> <status>", skip=2):
            if status not in splits or not item.startswith("id_") or not item[3:].isdigit():
                raise ValueError(f"InShop: malformed entry in {str(partition)!r}: expected "
                                 f"'img/... id_<digits> train|query|gallery', got {' '.join((rel, item, status))!r}")
            splits[status].append(ImageRecord(str(base / rel), int(item[3:]), -1))
        count = sum(len(v) for v in splits.values())
        if count != int(first):
            raise ValueError(f"InShop: {str(partition)!r} announces {first} images but lists {count}")
        super().__init__(splits["train"], splits["query"] + splits["gallery"])
        self.query: list[ImageRecord] = splits["query"]
        self.gallery: list[ImageRecord] = splits["gallery"]

    def _splits(self) -> list[tuple[str, list[ImageRecord]]]:
        return [("train", self.train), ("query", self.query), ("gallery", self.gallery)]
