"""The fused bdb_ext ops (``torch.ops.bdb_ext``): argument handling, autograd, forward AD, autocast and
fake kernels.

Each op family keeps its whole Python path in one module: ``drop.py`` (batch_drop_block, drop_pool)
and ``mining.py`` (pairwise_distance, batch_hard_mine, batch_hard_triplet_loss); ``_common.py`` holds
what both share. The C++ schemas are in ``csrc/schemas.h``.
"""

from __future__ import annotations

from ._common import RectLike, as_rect_tensor
from .drop import batch_drop_block, drop_pool, register_drop_ops
from .mining import batch_hard_mine, batch_hard_triplet_loss, pairwise_distance, register_mining_ops

__all__ = [
    "RectLike",
    "as_rect_tensor",
    "batch_drop_block",
    "batch_hard_mine",
    "batch_hard_triplet_loss",
    "drop_pool",
    "pairwise_distance",
]

_REGISTERED: set[str] = set()


def _register_namespace(ns: str) -> None:
    """Register every op family's Python parts for ``torch.ops.<ns>`` (idempotent). The test-only
    emulated library ``bdb_ext_emu`` has the same schemas and gets the same registrations."""
    if ns not in _REGISTERED:
        _REGISTERED.add(ns)
        register_drop_ops(ns)
        register_mining_ops(ns)


_register_namespace("bdb_ext")
