"""The fused bdb_ext ops (``torch.ops.bdb_ext``) with argument handling, autograd and fake kernels."""

from __future__ import annotations

from ._args import RectLike, as_rect_tensor
from .library import OpLibrary

__all__ = [
    "OpLibrary",
    "RectLike",
    "as_rect_tensor",
    "batch_drop_block",
    "batch_hard_mine",
    "batch_hard_triplet_loss",
    "drop_pool",
    "pairwise_distance",
]

_library = OpLibrary("bdb_ext")

batch_drop_block = _library.batch_drop_block
drop_pool = _library.drop_pool
pairwise_distance = _library.pairwise_distance
batch_hard_mine = _library.batch_hard_mine
batch_hard_triplet_loss = _library.batch_hard_triplet_loss
