"""Turning the numpy arrays or tensors that users pass into checked tensors.

Every feature and distance matrix that enters the evaluation passes :func:`as_tensor`, so the refusal of NaN and
inf lives here once: a NaN sorts as the largest value (and inf ties with itself), so a matrix with a few non-finite
rows still ranks, and its metrics look plausible (an all-NaN recall_at_k scores 1.0). A silent wrong metric is worse
than an error, so non-finite input is an error that says how many rows are affected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import torch

__all__ = ["as_tensor", "as_labels", "as_device", "check_finite", "positive_int", "LabelsLike"]

#: Integer ids: a 1-D tensor, numpy array or sequence of ints.
LabelsLike: TypeAlias = torch.Tensor | np.ndarray | Sequence[int]


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1; ValueError naming ``name`` otherwise (bools are refused: True is not a size)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def as_device(value: Any, name: str) -> torch.device:
    """``value`` (a torch.device or a string such as "cpu", "cuda:1") as a torch.device; ValueError naming ``name``
    for a string torch cannot parse, TypeError for anything else."""
    if isinstance(value, torch.device):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a torch.device or a str such as 'cpu' or 'cuda:0', got {type(value).__name__}")
    try:
        return torch.device(value)
    except RuntimeError as error:
        raise ValueError(f"{name} must name a device such as 'cpu', 'cuda' or 'cuda:0', got {value!r}") from error


def check_finite(tensor: torch.Tensor, name: str, hint: str = "") -> torch.Tensor:
    """Raise ValueError if ``tensor`` (rows along dim 0) holds NaN or inf, naming how many rows do; else return it.

    ``hint`` is appended to the message (what the caller knows about the likely cause).
    """
    if tensor.numel() == 0 or not tensor.is_floating_point():
        return tensor
    bad_rows = ~torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(dim=1)
    num_bad = int(bad_rows.sum())
    if num_bad:
        first = int(bad_rows.nonzero()[0, 0])
        raise ValueError(f"{name} holds NaN or inf in {num_bad} of {tensor.shape[0]} rows (first: row {first}); "
                         f"metrics of non-finite values would be meaningless{hint}")
    return tensor


def as_tensor(value: Any, name: str, ndim: int, device: torch.device | None = None) -> torch.Tensor:
    """``value`` as a finite floating tensor with ``ndim`` dimensions (float64 kept, anything else -> float32).

    Raises TypeError for anything but a real-valued tensor or numpy array (complex values would lose their imaginary
    part, booleans are not distances), ValueError for a wrong dimension count or NaN/inf entries.
    """
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if isinstance(value, np.ndarray) and value.dtype.kind not in "biufc":
        raise TypeError(f"{name} must hold real numbers, got a numpy array of dtype {value.dtype}")
    tensor = torch.as_tensor(value, device=device)
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    if tensor.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(tensor.shape)}")
    if tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()
    return check_finite(tensor, name)


def as_labels(value: Any, name: str, length: int, device: torch.device) -> torch.Tensor:
    """``value`` as an int64 tensor of shape (length,) on ``device``."""
    if isinstance(value, (list, tuple)):
        try:
            value = np.asarray(value)
        except ValueError as error:  # ragged nesting
            raise ValueError(f"{name} must be a flat sequence of ints ({error})") from None
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor, numpy array or sequence of ints, got {type(value).__name__}")
    if isinstance(value, np.ndarray) and value.dtype.kind not in "biufc":
        raise TypeError(f"{name} must hold integer ids, got a numpy array of dtype {value.dtype}")
    tensor = torch.as_tensor(value, device=device)
    if tensor.is_complex():
        raise TypeError(f"{name} must hold integer ids, got dtype {tensor.dtype}")
    if tensor.dim() != 1 or tensor.numel() != length:
        raise ValueError(f"{name} must have shape ({length},), got {tuple(tensor.shape)}")
    if tensor.is_floating_point():
        if not bool(torch.isfinite(tensor).all()) or not torch.equal(tensor, tensor.round()):
            raise ValueError(f"{name} must hold integer ids, got non-integer values")
    return tensor.long()
