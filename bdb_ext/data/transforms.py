"""The two augmentation recipes of BDB, built from torchvision transforms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import math

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

__all__ = ["Cutout", "OfficialRandomErasing", "PadToSquare", "build_transforms", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Cutout:
    """With probability ``p``, fill one ``size`` x ``size`` square of a (C, H, W) tensor with ``value``.

    As in the official BDB code: the square lies wholly inside the image, is applied after normalisation (so 0 is
    the data-set mean), and images not larger than the square are left unchanged. Uses torch's RNG so DataLoader
    worker seeding applies.
    """

    def __init__(self, p: float = 0.5, size: int = 64, value: float = 0.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Cutout: p must be in [0, 1], got {p}")
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"Cutout: size must be a positive int, got {size!r}")
        self.p, self.size, self.value = p, size, value

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if not isinstance(image, torch.Tensor) or image.dim() < 2:
            raise TypeError("Cutout: expected a (..., H, W) tensor (apply it after ToTensor/Normalize), got "
                            f"{type(image).__name__}")
        height, width = image.shape[-2:]
        if torch.rand(()).item() >= self.p or self.size >= height or self.size >= width:
            return image
        top = int(torch.randint(0, height - self.size + 1, ()).item())
        left = int(torch.randint(0, width - self.size + 1, ()).item())
        image = image.clone()
        image[..., top:top + self.size, left:left + self.size] = self.value
        return image

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, size={self.size}, value={self.value})"


class OfficialRandomErasing:
    """Random erasing as the official BDB code samples it (``utils/random_erasing.py``, Zhong et al.'s original).

    With probability ``p``, up to ``attempts`` tries: area = U(scale) x H x W, aspect = U(ratio[0], 1 / ratio[0]),
    h = round(sqrt(area x aspect)), w = round(sqrt(area / aspect)); the first try with h < H and w < W fills that
    rectangle (top-left uniform over the positions where it fits) with ``value``; if no try fits, the image is left
    as is. It differs from ``torchvision.transforms.RandomErasing``, which draws the aspect ratio log-uniformly
    and gives up after 10 tries. Uses torch's RNG (DataLoader worker seeding applies). Input: a (C, H, W) tensor
    after normalisation; returns a new tensor.
    """

    def __init__(self, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.4), min_aspect: float = 0.3,
                 value: float = 0.0, attempts: int = 100) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"OfficialRandomErasing: p must be in [0, 1], got {p}")
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"OfficialRandomErasing: scale must satisfy 0 < low <= high <= 1, got {scale}")
        if not 0.0 < min_aspect <= 1.0:
            raise ValueError(f"OfficialRandomErasing: min_aspect must be in (0, 1], got {min_aspect}")
        if not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"OfficialRandomErasing: attempts must be a positive int, got {attempts!r}")
        self.p, self.scale, self.min_aspect, self.value, self.attempts = p, scale, min_aspect, value, attempts

    @staticmethod
    def _uniform(low: float, high: float) -> float:
        return low + (high - low) * torch.rand((), dtype=torch.float64).item()

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if not isinstance(image, torch.Tensor) or image.dim() != 3:
            raise TypeError("OfficialRandomErasing: expected a (C, H, W) tensor (apply it after ToTensor/Normalize), "
                            f"got {type(image).__name__}")
        # The official test is `uniform(0, 1) > p: return`, i.e. erase with probability p.
        if self._uniform(0.0, 1.0) > self.p:
            return image
        height, width = image.shape[-2:]
        for _ in range(self.attempts):
            area = self._uniform(*self.scale) * height * width
            aspect = self._uniform(self.min_aspect, 1.0 / self.min_aspect)
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if w < width and h < height:
                top = int(torch.randint(0, height - h + 1, ()).item())
                left = int(torch.randint(0, width - w + 1, ()).item())
                image = image.clone()
                image[:, top:top + h, left:left + w] = self.value
                return image
        return image

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(p={self.p}, scale={self.scale}, aspect=({self.min_aspect}, "
                f"{1 / self.min_aspect:.4g}), value={self.value}, attempts={self.attempts})")


class PadToSquare:
    """Pad the shorter side with ``fill`` so the image is square, the content centred (the metric-learning recipe
    pads rather than stretching objects of any aspect ratio)."""

    def __init__(self, fill: int | float = 0) -> None:
        self.fill = fill

    def __call__(self, image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        width, height = TF.get_image_size(image)
        side = max(width, height)
        left, top = (side - width) // 2, (side - height) // 2
        if side == width == height:
            return image
        return TF.pad(image, [left, top, side - width - left, side - height - top], fill=self.fill)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fill={self.fill})"


def build_transforms(recipe: str, train: bool, height: int = 384, width: int = 128, *,
                     flip: bool = True, cutout: bool = True, random_erasing: bool | None = None,
                     resize: int = 256, crop: int = 224, test_size: int | None = None, dataset: str | None = None,
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                     erasing_sampler: str = "torchvision", test_pad: bool = True,
                     ) -> Callable[[Image.Image], Any]:
    """The train or test transform of a recipe; the result maps a PIL RGB image to a float32 (3, H, W) tensor.

    - ``"person"``: resize to ``height`` x ``width``, horizontal flip, ImageNet normalisation, Cutout (p 0.5,
      64 x 64, filled with 0); random erasing (p 0.5, area 0.02-0.4, aspect 0.3-3.33, fill 0) if
      ``random_erasing=True``. Test: resize and normalise.
    - ``"metric"``: pad to square, resize to ``resize``, random crop ``crop``, flip, normalise, random erasing
      (unless ``random_erasing=False``). Test: pad to square and resize to ``test_size``, which defaults to 224 for
      ``dataset="sop"`` and 256 otherwise. ``height``/``width``/``cutout`` apply to the person recipe only.
    - ``erasing_sampler``: "torchvision" (``T.RandomErasing``: log-uniform aspect ratio, 10 tries) or "official"
      (:class:`OfficialRandomErasing`: uniform aspect ratio in (0.3, 3.33), up to 100 tries, as the official code).
    - ``test_pad``: the metric recipe's test transform pads to square before resizing; False resizes the image
      as is, as the official CARS196 test transform does.
    """
    if recipe not in ("person", "metric"):
        raise ValueError(f"build_transforms: recipe must be 'person' or 'metric', got {recipe!r}")
    for name, value in (("height", height), ("width", width), ("resize", resize), ("crop", crop)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"build_transforms: {name} must be a positive int, got {value!r}")
    to_normalised = [T.ToTensor(), T.Normalize(mean, std)]
    if erasing_sampler == "official":
        erasing: Callable[..., Any] = OfficialRandomErasing(p=0.5, scale=(0.02, 0.4), min_aspect=0.3, value=0.0)
    elif erasing_sampler == "torchvision":
        erasing = T.RandomErasing(p=0.5, scale=(0.02, 0.4), ratio=(0.3, 3.33), value=0)
    else:
        raise ValueError(f"build_transforms: erasing_sampler must be 'torchvision' or 'official', got "
                         f"{erasing_sampler!r}")

    if recipe == "person":
        steps: list[Callable[..., Any]] = [T.Resize((height, width))]
        if train:
            steps += [T.RandomHorizontalFlip()] if flip else []
            steps += to_normalised
            steps += [Cutout(p=0.5, size=64, value=0.0)] if cutout else []
            steps += [erasing] if random_erasing else []
        else:
            steps += to_normalised
        return T.Compose(steps)

    if crop > resize:
        raise ValueError(f"build_transforms: crop ({crop}) must not exceed resize ({resize})")
    if train:
        steps = [PadToSquare(), T.Resize((resize, resize)), T.RandomCrop((crop, crop))]
        steps += [T.RandomHorizontalFlip()] if flip else []
        steps += to_normalised
        steps += [erasing] if random_erasing is not False else []
        return T.Compose(steps)
    size = test_size if test_size is not None else (224 if dataset == "sop" else 256)
    return T.Compose([*([PadToSquare()] if test_pad else []), T.Resize((size, size)), *to_normalised])
