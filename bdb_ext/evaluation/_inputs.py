"""Turning the numpy arrays or tensors that users pass into checked tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import torch

__all__ = ["as_tensor", "as_labels", "LabelsLike"]

#: Integer ids: a 1-D tensor, numpy array or sequence of ints.
LabelsLike: TypeAlias = torch.Tensor | np.ndarray | Sequence[int]


def as_tensor(value: Any, name: str, ndim: int, device: torch.device | None = None) -> torch.Tensor:
    """``value`` as a floating tensor with ``ndim`` dimensions (float64 kept, anything else -> float32)."""
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    tensor = torch.as_tensor(value, device=device)
    if tensor.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    elif tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()
    return tensor


def as_labels(value: Any, name: str, length: int, device: torch.device) -> torch.Tensor:
    """``value`` as an int64 tensor of shape (length,) on ``device``."""
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor, numpy array or sequence of ints, got {type(value).__name__}")
    tensor = torch.as_tensor(value, device=device)
    if tensor.dim() != 1 or tensor.numel() != length:
        raise ValueError(f"{name} must have shape ({length},), got {tuple(tensor.shape)}")
    if tensor.is_floating_point():
        if not torch.equal(tensor, tensor.round()):
            raise ValueError(f"{name} must hold integer ids, got non-integer values")
    return tensor.long()
