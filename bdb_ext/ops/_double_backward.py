"""Backward ops are not differentiable themselves: say so clearly instead of returning wrong grads."""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["refuse_double_backward"]


def _raise_on_backward(name: str):
    def backward(ctx, *grads):
        raise RuntimeError(
            f"{name}: double backward (create_graph=True through bdb_ext's backward) is not supported"
        )

    return backward


def refuse_double_backward(ns: str, backward_ops: Iterable[str]) -> None:
    """Register, for each ``ns::op`` in ``backward_ops``, an autograd formula that raises a clear error."""
    for op in backward_ops:
        torch.library.register_autograd(
            f"{ns}::{op}", _raise_on_backward(f"{ns}::{op}"), setup_context=lambda ctx, inputs, output: None
        )
