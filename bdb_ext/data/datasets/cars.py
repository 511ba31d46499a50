"""Cars196 with the metric-learning split: classes 1-98 train, 99-196 test (the file's own 'test' flag, which
splits images of the same classes, is not used)."""

from __future__ import annotations

import os

from ..records import ImageRecord
from .base import MetricLearningDataset, resolve_root

__all__ = ["Cars196"]

_NUM_TRAIN_CLASSES = 98


class Cars196(MetricLearningDataset):
    """Cars196: ``root`` (or ``root/cars196``, ``root/CARS196``) holds ``cars_annos.mat`` (struct array
    ``annotations`` with ``relative_im_path`` and ``class``) and ``car_ims/``."""

    name = "cars"

    def __init__(self, root: str | os.PathLike) -> None:
        from scipy.io import loadmat

        base = resolve_root(root, "Cars196", ("cars_annos.mat", "car_ims"), ("cars196", "CARS196", "cars"))
        self.root = base
        annos = loadmat(base / "cars_annos.mat", simplify_cells=True).get("annotations")
        if annos is None:
            raise ValueError(f"Cars196: {str(base / 'cars_annos.mat')!r} has no 'annotations' struct array")
        if isinstance(annos, dict):  # a single annotation is not wrapped in a list by simplify_cells
            annos = [annos]
        train, test = [], []
        for anno in annos:
            if "relative_im_path" not in anno or "class" not in anno:
                raise ValueError("Cars196: every entry of 'annotations' needs 'relative_im_path' and 'class' "
                                 f"fields, got {sorted(anno)}")
            cls = int(anno["class"])
            record = ImageRecord(str(base / str(anno["relative_im_path"])), cls, -1)
            (train if cls <= _NUM_TRAIN_CLASSES else test).append(record)
        super().__init__(train, test)
