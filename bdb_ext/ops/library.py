"""Python entry points of the bdb_ext ops, bound to one op library namespace.

``bdb_ext.ops`` exposes the methods of ``OpLibrary("bdb_ext")`` as functions. The test suite builds
``OpLibrary("bdb_ext_emu")`` over the CUDA kernels compiled for the CPU emulator, so the emulated
kernels go through the very same argument handling. Each op family is a mixin in its own module.
"""

from __future__ import annotations

import torch

from ._registration import register_python_parts
from .drop import DropOps
from .mining import MiningOps

__all__ = ["OpLibrary"]


class OpLibrary(DropOps, MiningOps):
    """The bdb_ext ops of one ``torch.ops`` namespace, with argument handling."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._ops = getattr(torch.ops, namespace)
        register_python_parts(namespace)

    def __repr__(self) -> str:
        return f"OpLibrary({self.namespace!r})"
