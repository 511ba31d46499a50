"""Stanford Online Products with its standard split (Ebay_train.txt: 11,318 classes; Ebay_test.txt: 11,316)."""

from __future__ import annotations

import os
from pathlib import Path

from ..records import ImageRecord
from ._lists import parse_int, read_rows
from .base import MetricLearningDataset, resolve_root

__all__ = ["StanfordOnlineProducts"]

_EXPECTED = "<image_id> <class_id> <super_class_id> <path>"


def _read(path: Path, base: Path) -> list[ImageRecord]:
    return [ImageRecord(str(base / rel), parse_int(cls, path, "StanfordOnlineProducts", "class_id"), -1)
            for _, cls, _, rel in read_rows(path, 4, "StanfordOnlineProducts", _EXPECTED, skip=1)]


class StanfordOnlineProducts(MetricLearningDataset):
    """Stanford Online Products: ``root`` (or ``root/Stanford_Online_Products``) holds ``Ebay_train.txt`` and
    ``Ebay_test.txt`` (a header line, then ``image_id class_id super_class_id path``) and the image folders."""

    name = "sop"

    def __init__(self, root: str | os.PathLike) -> None:
        base = resolve_root(root, "StanfordOnlineProducts", ("Ebay_train.txt", "Ebay_test.txt"),
                            ("Stanford_Online_Products", "sop"))
        self.root = base
        super().__init__(_read(base / "Ebay_train.txt", base), _read(base / "Ebay_test.txt", base))
