"""Argument handling shared by the op entry points."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch

__all__ = ["RectLike", "as_rect_tensor", "check_tensor"]

RectLike = Union[torch.Tensor, Sequence[int]]


def as_rect_tensor(rect: RectLike) -> torch.Tensor:
    """``rect`` as the int64 tensor [top, left, height, width] the kernels read.

    A tensor is passed through unchanged (its dtype, shape and device are checked by the op); a
    sequence of 4 ints becomes a CPU tensor.
    """
    if isinstance(rect, torch.Tensor):
        return rect
    if isinstance(rect, (str, bytes)) or not isinstance(rect, Sequence):
        raise TypeError(
            f"rect must be an int64 tensor or a sequence of 4 ints [top, left, height, width], got {type(rect).__name__}"
        )
    if len(rect) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in rect):
        raise ValueError(f"rect must hold 4 ints [top, left, height, width], got {list(rect)!r}")
    return torch.tensor(rect, dtype=torch.int64)


def check_tensor(name: str, value: object) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


