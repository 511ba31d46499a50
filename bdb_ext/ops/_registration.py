"""Fake (meta) kernels and autograd for the ops of one op library namespace.

The public library is ``bdb_ext``; the test-only CUDA emulation library ``bdb_ext_emu`` has the same
schemas and gets the same registrations, so both are exercised by the same tests. Each op family
registers from its own module.
"""

from __future__ import annotations

from ._register_drop import register_drop_ops
from ._register_mining import register_mining_ops

__all__ = ["register_python_parts"]

_REGISTERED: set[str] = set()


def register_python_parts(ns: str) -> None:
    """Register every op family's fake kernels and autograd for ``torch.ops.<ns>`` (idempotent)."""
    if ns in _REGISTERED:
        return
    _REGISTERED.add(ns)
    register_drop_ops(ns)
    register_mining_ops(ns)
