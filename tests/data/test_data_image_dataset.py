"""ImageDataset: Pillow loading into RGB tensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fake_trees import write_image
from torch.utils.data import DataLoader

from bdb_ext.data import ImageDataset, ImageRecord, build_transforms


def test_items_are_rgb_tensors_with_labels(tmp_path: Path) -> None:
    records = [ImageRecord(str(write_image(tmp_path / "a.jpg", 1, mode="L")), 4, 0),
               ImageRecord(str(write_image(tmp_path / "b.png", 2)), 5, 1)]
    data = ImageDataset(records)
    image, pid, camid = data[0]
    assert image.shape == (3, 8, 4) and image.dtype == torch.float32 and (pid, camid) == (4, 0)
    assert torch.allclose(image[0], image[1])  # grey promoted to RGB
    assert data.pids == [4, 5]
    png = data[1][0]
    assert torch.allclose(png[:, 0, 0], torch.tensor([2, 6, 14]) / 255)

    loader = DataLoader(ImageDataset(records, build_transforms("person", train=False, height=16, width=8)),
                        batch_size=2)
    images, pids, camids = next(iter(loader))
    assert images.shape == (2, 3, 16, 8) and pids.tolist() == [4, 5] and camids.tolist() == [0, 1]


def test_bad_records(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="ImageRecord"):
        ImageDataset([("a.jpg", 1)])
    with pytest.raises(FileNotFoundError):
        ImageDataset([ImageRecord(str(tmp_path / "missing.jpg"), 0, 0)])[0]
