"""Pure-PyTorch references for every bdb_ext op, written to mirror the published reference code
(daizuozhuo/batch-dropblock-network). Tests and benchmarks compare the fused kernels with these.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["batch_drop_block", "batch_drop_block_broadcast", "drop_pool"]


def _rect_values(rect: torch.Tensor | Sequence[int]) -> list[int]:
    return [int(v) for v in (rect.tolist() if isinstance(rect, torch.Tensor) else rect)]


def batch_drop_block(x: torch.Tensor, rect: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """The reference code's BatchDrop: a full-size ones mask, the rectangle zeroed, then x * mask."""
    top, left, height, width = _rect_values(rect)
    mask = x.new_ones(x.size())
    mask[:, :, top : top + height, left : left + width] = 0
    return x * mask


def batch_drop_block_broadcast(x: torch.Tensor, rect: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """A leaner eager form: a (1, 1, H, W) mask broadcast over the batch and channels."""
    top, left, height, width = _rect_values(rect)
    mask = x.new_ones((1, 1, x.shape[2], x.shape[3]))
    mask[:, :, top : top + height, left : left + width] = 0
    return x * mask


def drop_pool(x: torch.Tensor, rect: torch.Tensor | Sequence[int], mode: str = "max") -> torch.Tensor:
    """The reference code's BDB branch head: BatchDrop, then AdaptiveMaxPool2d (or Avg), flattened to (N, C)."""
    y = batch_drop_block(x, rect)
    if y.numel() == 0:  # adaptive pooling rejects empty channel dims; the pooled result is just empty
        return y.new_zeros(y.shape[:2]) + y.sum(dim=(2, 3))
    pooled = F.adaptive_max_pool2d(y, 1) if mode == "max" else F.adaptive_avg_pool2d(y, 1)
    return pooled.flatten(1)
