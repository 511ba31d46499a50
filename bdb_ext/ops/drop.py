"""The Batch DropBlock ops: ``batch_drop_block`` and ``drop_pool``, each with its whole Python path here.

Reading order for one op: the public function, its argument handling (``_<op>``, which takes the
``torch.ops`` namespace first), its fake kernel, its autograd Function (setup_context, backward, forward-mode
jvp; forward and vmap come from ``_common.OpFunction``). The C++ side is ``csrc/schemas.h`` (schema),
``csrc/cpu/drop_cpu.cpp`` and ``csrc/cuda/drop_cuda.cu`` (kernels). ``register_drop_ops`` registers
the Python parts for a ``torch.ops`` namespace: ``bdb_ext``, and the test-only ``bdb_ext_emu``.
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import (
    OpFunction,
    RectLike,
    as_rect_tensor,
    call_backward_op,
    check_devices,
    check_tensor,
    register_op,
    under_torch_func,
)

__all__ = ["POOL_MODES", "batch_drop_block", "check_pool_mode", "drop_pool", "register_drop_ops"]

POOL_MODES = ("max", "avg")


def check_pool_mode(mode: object) -> str:
    """``mode`` if it is a pooling mode ("max" or "avg"), else a ValueError naming it.

    The one Python check of the mode, used by :func:`drop_pool` and :class:`~bdb_ext.BatchDropPool` (the
    C++ op repeats it for direct ``torch.ops`` calls).
    """
    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")
    return mode


def _dense_format(x: torch.Tensor) -> torch.memory_format:
    # Mirrors dense_feature_map() in csrc/host/drop_args.h: NCHW and channels_last are kept, any
    # other strides come out NCHW.
    if x.is_contiguous():
        return torch.contiguous_format
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _empty_map(like: torch.Tensor, shape, memory_format: torch.memory_format) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format)


# --- batch_drop_block -----------------------------------------------------------------------------


def batch_drop_block(x: torch.Tensor, rect: RectLike) -> torch.Tensor:
    """Zero the rectangle ``rect`` of every (n, c) map of ``x``.

    Args:
        x: (N, C, H, W) float32/float64/float16/bfloat16; NCHW or channels_last is read in place.
        rect: [top, left, height, width] as an int64 tensor (on the CPU or on x's device, where
            the kernel reads it without a host sync) or a sequence of 4 ints. A CPU rect must lie
            inside the map; a device rect is clamped to it.

    Returns:
        y: like ``x`` (same memory format for NCHW/channels_last), equal to ``x`` outside the
        rectangle and 0 inside. Differentiable in ``x`` in reverse and forward mode (the gradient
        and the tangent get the same mask). Under autocast it runs in x's dtype.
    """
    return _batch_drop_block(torch.ops.bdb_ext, x, rect)


def _batch_drop_block(ops: Any, x: torch.Tensor, rect: RectLike) -> torch.Tensor:
    check_tensor("x", x)
    rect = as_rect_tensor(rect)
    if under_torch_func():
        return _BatchDropBlock.apply(ops, x, rect)
    return ops.batch_drop_block(x, rect)


def _batch_drop_block_fake(x, rect):
    check_devices("batch_drop_block", ("x", x), ("rect", rect), cpu_ok=("rect",))
    return _empty_map(x, x.shape, _dense_format(x))


def _batch_drop_block_backward_fake(grad_y, rect):
    check_devices("_batch_drop_block_backward", ("grad_y", grad_y), ("rect", rect), cpu_ok=("rect",))
    return _empty_map(grad_y, grad_y.shape, _dense_format(grad_y))


class _BatchDropBlock(OpFunction):
    """y = x outside the rectangle, 0 inside: the gradient and the tangent get the same mask."""

    op_name = "batch_drop_block"

    @staticmethod
    def setup_context(ctx, inputs, output):
        ops, _, rect = inputs
        ctx.ops = ops
        ctx.save_for_backward(rect)
        ctx.save_for_forward(rect)

    @staticmethod
    def backward(ctx, grad_y):
        (rect,) = ctx.saved_tensors
        return None, call_backward_op(ctx.ops, "_batch_drop_block_backward", grad_y, rect), None

    @staticmethod
    def jvp(ctx, _ops_tangent, x_tangent, _rect_tangent):
        (rect,) = ctx.saved_tensors
        return _BatchDropBlock.apply(ctx.ops, x_tangent, rect)


# --- drop_pool ------------------------------------------------------------------------------------


def drop_pool(x: torch.Tensor, rect: RectLike, mode: str = "max", *,
              return_argmax: bool = True) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
    """Global pooling of ``batch_drop_block(x, rect)`` in one pass that reads only kept values.

    Args:
        x: (N, C, H, W) float32/float64/float16/bfloat16.
        rect: as in :func:`batch_drop_block`.
        mode: "max" (amax over all H*W positions, dropped ones counting as 0; NaN propagates)
            or "avg" (sum of kept values / (H*W)).
        return_argmax: False returns ``pooled`` alone, as ``F.max_pool2d(return_indices=False)`` does:
            the kernel then writes no argmax unless a derivative needs it (no int64 (N, C) output
            to allocate, store and fault in for an inference call).

    Returns:
        (pooled, argmax), or pooled alone with ``return_argmax=False``: pooled is (N, C) in x's dtype
        (also under autocast). For "max", argmax is (N, C) int64, the row-major position in the H*W
        map that receives the gradient (the first kept position attaining the max), or -1 when the
        max comes only from dropped zeros; for "avg" it is an empty (0, 0) tensor. ``pooled`` is
        differentiable in reverse and forward mode, whatever ``return_argmax``.
    """
    return _drop_pool(torch.ops.bdb_ext, x, rect, mode, return_argmax=return_argmax)


def _drop_pool(ops: Any, x: torch.Tensor, rect: RectLike, mode: str = "max", *,
               return_argmax: bool = True) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
    check_tensor("x", x)
    check_pool_mode(mode)
    if not isinstance(return_argmax, bool):
        raise TypeError(f"return_argmax must be a bool, got {type(return_argmax).__name__}")
    rect = as_rect_tensor(rect)
    if under_torch_func():
        pooled, argmax = _DropPool.apply(ops, x, rect, mode, return_argmax)
    else:
        pooled, argmax = ops.drop_pool(x, rect, mode, return_argmax)
    return (pooled, argmax) if return_argmax else pooled


def _drop_pool_fake(x, rect, mode, with_argmax=True):
    check_devices("drop_pool", ("x", x), ("rect", rect), cpu_ok=("rect",))
    n, c = x.shape[0], x.shape[1]
    out = x.new_empty((n, c))
    argmax = x.new_empty((n, c) if mode == "max" and with_argmax else (0, 0), dtype=torch.int64)
    return out, argmax


def _drop_pool_backward_fake(grad_out, argmax, rect, mode, input_size, channels_last):
    # As in the C++ check: "avg" ignores its (empty) argmax.
    indices = (("argmax", argmax),) if mode == "max" else ()
    check_devices("_drop_pool_backward", ("grad_out", grad_out), *indices, ("rect", rect), cpu_ok=("rect",))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return _empty_map(grad_out, input_size, fmt)


class _DropPool(OpFunction):
    """max: the gradient and the tangent go to (come from) the argmax position, none when the max is a
    dropped zero (argmax -1); avg: the gradient (tangent) is the avg drop-pool's adjoint (itself).

    A call recorded for a derivative always computes the max's argmax, which the derivative needs:
    with_argmax=False only spares it where nothing is recorded (an inference call)."""

    op_name = "drop_pool"

    @classmethod
    def forward(cls, ops, x, rect, mode, _with_argmax=True):
        with torch._C._AutoDispatchBelowAutograd():
            return ops.drop_pool(x, rect, mode, True)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ops, x, rect, mode = inputs[:4]
        _, argmax = output
        ctx.ops = ops
        ctx.mode = mode
        ctx.input_size = list(x.shape)
        ctx.channels_last = _dense_format(x) == torch.channels_last
        ctx.mark_non_differentiable(argmax)
        ctx.save_for_backward(argmax, rect)
        ctx.save_for_forward(argmax, rect)

    @staticmethod
    def backward(ctx, grad_out, _grad_argmax):
        argmax, rect = ctx.saved_tensors
        grad_x = call_backward_op(
            ctx.ops, "_drop_pool_backward",
            grad_out, argmax, rect, ctx.mode, ctx.input_size, ctx.channels_last,
        )
        return None, grad_x, None, None, None

    @staticmethod
    def jvp(ctx, _ops_tangent, x_tangent, _rect_tangent, _mode_tangent, _with_argmax_tangent=None):
        argmax, rect = ctx.saved_tensors
        if ctx.mode == "avg":
            return _DropPool.apply(ctx.ops, x_tangent, rect, "avg", True)[0], None
        # argmax indexes the row-major H*W map; -1 (the max is a dropped zero) has no tangent.
        flat = x_tangent.flatten(2)
        picked = flat.gather(2, argmax.clamp(min=0).unsqueeze(2)).squeeze(2)
        return torch.where(argmax >= 0, picked, torch.zeros_like(picked)), None


# --- Registration ---------------------------------------------------------------------------------


def register_drop_ops(ns: str) -> None:
    """Register the fake kernels, autograd and autocast of ``torch.ops.<ns>``'s drop ops."""
    # The drop kernels support fp16/bf16 and only copy or compare values: under autocast they run in x's dtype.
    register_op(ns, _BatchDropBlock, _batch_drop_block_fake, _batch_drop_block_backward_fake, autocast_dtype=None)
    register_op(ns, _DropPool, _drop_pool_fake, _drop_pool_backward_fake, autocast_dtype=None)
