"""nn.Modules built on the fused ops."""

from .drop_block import BatchDropBlock, BatchDropPool
from .rectangles import draw_drop_rect, drop_block_size

__all__ = ["BatchDropBlock", "BatchDropPool", "draw_drop_rect", "drop_block_size"]
