"""Fake kernels and autograd of the drop ops (batch_drop_block, drop_pool) for one namespace."""

from __future__ import annotations

import torch

from ._devices import check_devices
from ._double_backward import refuse_double_backward

__all__ = ["register_drop_ops"]


def _dense_format(x: torch.Tensor) -> torch.memory_format:
    # Mirrors dense_feature_map() in csrc/host/drop_args.h: NCHW and channels_last are kept, any
    # other strides come out NCHW.
    if x.is_contiguous():
        return torch.contiguous_format
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _is_channels_last(x: torch.Tensor) -> bool:
    return _dense_format(x) == torch.channels_last


def _empty_map(like: torch.Tensor, shape, memory_format: torch.memory_format) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format)


def register_drop_ops(ns: str) -> None:
    """Register fake kernels and autograd formulas for ``torch.ops.<ns>``'s drop ops."""
    lib_ops = getattr(torch.ops, ns)

    @torch.library.register_fake(f"{ns}::batch_drop_block")
    def _(x, rect):
        check_devices("batch_drop_block", ("x", x), ("rect", rect), cpu_ok=("rect",))
        return _empty_map(x, x.shape, _dense_format(x))

    @torch.library.register_fake(f"{ns}::_batch_drop_block_backward")
    def _(grad_y, rect):
        check_devices("_batch_drop_block_backward", ("grad_y", grad_y), ("rect", rect), cpu_ok=("rect",))
        return _empty_map(grad_y, grad_y.shape, _dense_format(grad_y))

    @torch.library.register_fake(f"{ns}::drop_pool")
    def _(x, rect, mode):
        check_devices("drop_pool", ("x", x), ("rect", rect), cpu_ok=("rect",))
        n, c = x.shape[0], x.shape[1]
        out = x.new_empty((n, c))
        argmax = x.new_empty((n, c) if mode == "max" else (0, 0), dtype=torch.int64)
        return out, argmax

    @torch.library.register_fake(f"{ns}::_drop_pool_backward")
    def _(grad_out, argmax, rect, mode, input_size, channels_last):
        # As in the C++ check: "avg" ignores its (empty) argmax.
        indices = (("argmax", argmax),) if mode == "max" else ()
        check_devices("_drop_pool_backward", ("grad_out", grad_out), *indices, ("rect", rect), cpu_ok=("rect",))
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return _empty_map(grad_out, input_size, fmt)

    def drop_setup(ctx, inputs, output):
        _, rect = inputs
        ctx.save_for_backward(rect)

    def drop_backward(ctx, grad_y):
        (rect,) = ctx.saved_tensors
        return lib_ops._batch_drop_block_backward(grad_y, rect), None

    torch.library.register_autograd(f"{ns}::batch_drop_block", drop_backward, setup_context=drop_setup)

    def pool_setup(ctx, inputs, output):
        x, rect, mode = inputs
        _, argmax = output
        ctx.save_for_backward(argmax, rect)
        ctx.mode = mode
        ctx.input_size = x.shape
        ctx.channels_last = _is_channels_last(x)

    def pool_backward(ctx, grad_out, _grad_argmax):
        argmax, rect = ctx.saved_tensors
        grad_x = lib_ops._drop_pool_backward(
            grad_out, argmax, rect, ctx.mode, list(ctx.input_size), ctx.channels_last
        )
        return grad_x, None, None

    torch.library.register_autograd(f"{ns}::drop_pool", pool_backward, setup_context=pool_setup)

    refuse_double_backward(ns, ("_batch_drop_block_backward", "_drop_pool_backward"))
