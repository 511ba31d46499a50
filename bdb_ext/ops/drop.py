"""Entry points of the Batch DropBlock ops (batch_drop_block, drop_pool)."""

from __future__ import annotations

import torch

from ._args import RectLike, as_rect_tensor, check_tensor

__all__ = ["DropOps"]

_POOL_MODES = ("max", "avg")


class DropOps:
    """Mixin of :class:`~bdb_ext.ops.library.OpLibrary`; ``self._ops`` is the ``torch.ops`` namespace."""

    _ops: object

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
        check_tensor("x", x)
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
        check_tensor("x", x)
        if mode not in _POOL_MODES:
            raise ValueError(f"mode must be one of {_POOL_MODES}, got {mode!r}")
        return self._ops.drop_pool(x, as_rect_tensor(rect), mode)
