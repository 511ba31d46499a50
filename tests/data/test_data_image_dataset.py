"""ImageDataset: Pillow loading into RGB tensors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from fake_trees import write_image
from PIL import Image
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


@pytest.mark.parametrize("damage", ["truncated", "empty", "not an image"])
def test_unreadable_images_name_their_path(tmp_path: Path, damage: str) -> None:
    # Pillow says only "Truncated File Read" or "image file is truncated"; which of 30,000 files was it?
    path = write_image(tmp_path / "0001_c1s1_000001_01.jpg", 1)
    Image.new("RGB", (64, 128), (10, 200, 30)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "not an image": b"GIF89a-ish"}[damage])
    dataset = ImageDataset([ImageRecord(str(path), 1, 0)])
    with pytest.raises(OSError, match=f"cannot read image '{re.escape(str(path))}'"):
        dataset[0]
    # Through DataLoader worker processes the message still names the file.
    loader = DataLoader(dataset, batch_size=1, num_workers=1)
    with pytest.raises(OSError, match=re.escape(str(path))):
        next(iter(loader))
