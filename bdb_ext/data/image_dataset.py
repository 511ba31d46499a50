"""A torch Dataset over image records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import to_tensor

from .records import ImageRecord

__all__ = ["ImageDataset", "read_image"]


def read_image(path: str) -> Image.Image:
    """Open an image as RGB (some data sets hold grayscale or CMYK JPEGs).

    Raises FileNotFoundError for a missing file and OSError naming ``path`` for one Pillow cannot decode (truncated,
    corrupt, not an image): Pillow's own messages ("Truncated File Read") do not say which of 30,000 files it was.
    """
    try:
        with Image.open(path) as image:
            # convert() forces the decode, so a truncated file fails here, inside the try.
            return image.convert("RGB")
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError) as error:  # Pillow raises SyntaxError for some malformed headers
        raise OSError(f"cannot read image {str(path)!r}: {error or type(error).__name__} (truncated or corrupt "
                      f"file?)") from error


class ImageDataset(Dataset):
    """Yields ``(image, pid, camid)`` for each record.

    ``image`` is ``transform(PIL RGB image)``; without a transform it is a float32 tensor (3, H, W) in [0, 1].
    """

    def __init__(self, records: Sequence[ImageRecord], transform: Callable[[Image.Image], Any] | None = None) -> None:
        records = list(records)
        if records and not all(isinstance(r, tuple) and len(r) == 3 for r in records):
            raise TypeError("ImageDataset: records must be ImageRecord(path, pid, camid) tuples")
        self.records = [ImageRecord(*r) for r in records]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        path, pid, camid = self.records[index]
        image = read_image(path)
        return (self.transform(image) if self.transform is not None else to_tensor(image)), pid, camid

    @property
    def pids(self) -> list[int]:
        """The pid of every record, in order (what :class:`RandomIdentitySampler` takes)."""
        return [r.pid for r in self.records]
