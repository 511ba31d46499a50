"""CUB-200-2011 with the metric-learning split: classes 1-100 train, 101-200 test."""

from __future__ import annotations

import os

from ..records import ImageRecord
from ._lists import parse_int, read_rows
from .base import MetricLearningDataset, resolve_root

__all__ = ["CUB200"]

_NUM_TRAIN_CLASSES = 100


class CUB200(MetricLearningDataset):
    """CUB-200-2011: ``root`` (or ``root/CUB_200_2011``) holds ``images/``, ``images.txt`` (``<id> <path>``) and
    ``image_class_labels.txt`` (``<id> <class 1-200>``)."""

    name = "cub"

    def __init__(self, root: str | os.PathLike) -> None:
        base = resolve_root(root, "CUB200", ("images", "images.txt", "image_class_labels.txt"),
                            ("CUB_200_2011", "cub", "CUB_200_2011/CUB_200_2011"))
        self.root = base
        paths = {}
        for image_id, rel in read_rows(base / "images.txt", 2, "CUB200", "<image id> <relative path>"):
            paths[image_id] = rel
        train, test = [], []
        for image_id, label in read_rows(base / "image_class_labels.txt", 2, "CUB200", "<image id> <class id>"):
            if image_id not in paths:
                raise ValueError(f"CUB200: image id {image_id} of image_class_labels.txt is not in images.txt")
            cls = parse_int(label, base / "image_class_labels.txt", "CUB200", "class id")
            record = ImageRecord(str(base / "images" / paths[image_id]), cls, -1)
            (train if cls <= _NUM_TRAIN_CLASSES else test).append(record)
        super().__init__(train, test)
