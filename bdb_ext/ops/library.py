"""Python entry points of the bdb_ext ops, bound to one op library namespace.

``bdb_ext.ops`` exposes the methods of ``OpLibrary("bdb_ext")`` as functions. The test suite builds
``OpLibrary("bdb_ext_emu")`` over the CUDA kernels compiled for the CPU emulator, so the emulated
kernels go through the very same argument handling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch

from ._registration import register_python_parts

__all__ = ["OpLibrary", "RectLike", "as_rect_tensor"]

RectLike = Union[torch.Tensor, Sequence[int]]

_POOL_MODES = ("max", "avg")


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


def _check_tensor(name: str, value: object) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


class OpLibrary:
    """The bdb_ext ops of one ``torch.ops`` namespace, with argument handling."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._ops = getattr(torch.ops, namespace)
        register_python_parts(namespace)

    def __repr__(self) -> str:
        return f"OpLibrary({self.namespace!r})"

    def batch_drop_block(self, x: torch.Tensor, rect: RectLike) -> torch.Tensor:
        """Zero the rectangle ``rect`` of every (n, c) map of ``x``.

        Args:
            x: (N, C, H, W) float32/float64/float16/bfloat16; NCHW or channels_last is read in place.
            rect: [top, left, height, width] as an int64 tensor (on the CPU or on x's device, where
                the kernel reads it without a host sync) or a sequence of 4 ints. A CPU rect must lie
                inside the map; a device rect is clamped to it.

        Returns:
            y: like ``x`` (same memory format for NCHW/channels_last), equal to ``x`` outside the
            rectangle and 0 inside. Differentiable in ``x`` (the gradient gets the same mask).
        """
        _check_tensor("x", x)
        return self._ops.batch_drop_block(x, as_rect_tensor(rect))

    def drop_pool(
        self, x: torch.Tensor, rect: RectLike, mode: str = "max"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Global pooling of ``batch_drop_block(x, rect)`` in one pass that reads only kept values.

        Args:
            x: (N, C, H, W) float32/float64/float16/bfloat16.
            rect: as in :meth:`batch_drop_block`.
            mode: "max" (amax over all H*W positions, dropped ones counting as 0; NaN propagates)
                or "avg" (sum of kept values / (H*W)).

        Returns:
            (pooled, argmax): pooled is (N, C) in x's dtype. For "max", argmax is (N, C) int64, the
            row-major position in the H*W map that receives the gradient (the first kept position
            attaining the max), or -1 when the max comes only from dropped zeros; for "avg" it is
            an empty (0, 0) tensor.
        """
        _check_tensor("x", x)
        if mode not in _POOL_MODES:
            raise ValueError(f"mode must be one of {_POOL_MODES}, got {mode!r}")
        return self._ops.drop_pool(x, as_rect_tensor(rect), mode)
