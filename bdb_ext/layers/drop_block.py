"""The Batch DropBlock layers: drop alone, and drop fused with global pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..ops.drop import check_pool_mode
from .rectangles import check_ratio, draw_drop_rect

__all__ = ["BatchDropBlock", "BatchDropPool"]


def _check_generator(generator: object) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _check_feature_map(x: object) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must be a 4-D tensor (N, C, H, W), got shape {tuple(x.shape)}")


class _BatchDropLayer(nn.Module):
    """What both Batch DropBlock layers share: the block's ratios, the generator, and drawing the rectangle."""

    def __init__(self, h_ratio: float, w_ratio: float, generator: torch.Generator | None) -> None:
        super().__init__()
        self.h_ratio = check_ratio("h_ratio", h_ratio)
        self.w_ratio = check_ratio("w_ratio", w_ratio)
        _check_generator(generator)
        self.generator = generator

    def extra_repr(self) -> str:
        return f"h_ratio={self.h_ratio}, w_ratio={self.w_ratio}"

    def draw_rect(self, x: torch.Tensor) -> torch.Tensor:
        """A fresh rectangle [top, left, rows, cols] (int64, on x's device) for a feature map shaped like ``x``."""
        return draw_drop_rect(x.shape[2], x.shape[3], self.h_ratio, self.w_ratio, x.device, self.generator)


class BatchDropBlock(_BatchDropLayer):
    """Batch DropBlock (Dai et al., ICCV 2019): in training, zero the same rectangle of every
    feature map of every sample; in eval, the identity.

    The block is round(h_ratio * H) x round(w_ratio * W); its top-left corner is drawn uniformly
    once per forward call with torch's RNG on x's device (or ``generator``). Dropped values are set
    to 0 without rescaling, as in the paper.

    Args:
        h_ratio: fraction of rows dropped, in [0, 1] (the paper's re-ID setting: 0.3; official code 0.33).
        w_ratio: fraction of columns dropped, in [0, 1] (re-ID: 1.0, whole rows).
        generator: optional torch.Generator on the input's device, for reproducible rectangles.

    Shape: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, h_ratio: float = 0.3, w_ratio: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__(h_ratio, w_ratio, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_feature_map(x)
        if not self.training:
            return x
        return ops.batch_drop_block(x, self.draw_rect(x))


class BatchDropPool(_BatchDropLayer):
    """Batch DropBlock fused with global pooling: (N, C, H, W) -> (N, C).

    In training, equal to ``adaptive_{max,avg}_pool2d(BatchDropBlock(x), 1).flatten(1)`` but done in
    one pass that reads only the kept values (and, for "max", a backward that writes the dense
    gradient once). In eval, plain global pooling.

    Args:
        h_ratio, w_ratio, generator: as in :class:`BatchDropBlock`.
        mode: "max" (the BDB branch of the paper) or "avg".
    """

    def __init__(
        self,
        h_ratio: float = 0.3,
        w_ratio: float = 1.0,
        mode: str = "max",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(h_ratio, w_ratio, generator)
        self.mode = check_pool_mode(mode)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode!r}"

    def forward(self, x: torch.Tensor, rect: torch.Tensor | None = None) -> torch.Tensor:
        """Pool ``x``; in training drop ``rect`` if given (e.g. one shared with another layer), else a fresh one."""
        _check_feature_map(x)
        if not self.training:
            pooled = F.adaptive_max_pool2d(x, 1) if self.mode == "max" else F.adaptive_avg_pool2d(x, 1)
            return pooled.flatten(1)
        if rect is None:
            rect = self.draw_rect(x)
        return ops.drop_pool(x, rect, self.mode, return_argmax=False)
