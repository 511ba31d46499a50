"""Fake kernels and autograd of the metric-learning ops (pairwise_distance, batch_hard_mine)."""

from __future__ import annotations

import torch

from ._devices import check_devices
from ._double_backward import refuse_double_backward

__all__ = ["register_mining_ops"]


def register_mining_ops(ns: str) -> None:
    """Register fake kernels and autograd formulas for ``torch.ops.<ns>``'s mining ops."""
    lib_ops = getattr(torch.ops, ns)

    @torch.library.register_fake(f"{ns}::pairwise_distance")
    def _(x, y, squared):
        check_devices("pairwise_distance", ("x", x), ("y", y))
        torch._check(x.dim() == 2 and y.dim() == 2, lambda: "pairwise_distance: x and y must be 2-D (N, D)")
        torch._check(x.shape[1] == y.shape[1], lambda: "pairwise_distance: x and y must have the same D")
        return x.new_empty((x.shape[0], y.shape[0]))

    @torch.library.register_fake(f"{ns}::_pairwise_distance_backward")
    def _(grad, x, y, dist, squared):
        check_devices("_pairwise_distance_backward", ("x", x), ("y", y), ("grad", grad), ("dist", dist))
        return x.new_empty(x.shape), y.new_empty(y.shape)

    @torch.library.register_fake(f"{ns}::batch_hard_mine")
    def _(x, labels):
        check_devices("batch_hard_mine", ("x", x), ("labels", labels))
        torch._check(x.dim() == 2, lambda: "batch_hard_mine: x must be 2-D (N, D)")
        n = x.shape[0]
        return x.new_empty((n,)), x.new_empty((n,)), x.new_empty((n,), dtype=torch.int64), x.new_empty(
            (n,), dtype=torch.int64
        )

    @torch.library.register_fake(f"{ns}::_batch_hard_mine_backward")
    def _(grad_ap, grad_an, x, idx_p, idx_n, d_ap, d_an):
        check_devices(
            "_batch_hard_mine_backward", ("x", x), ("grad_ap", grad_ap), ("grad_an", grad_an), ("idx_p", idx_p),
            ("idx_n", idx_n), ("d_ap", d_ap), ("d_an", d_an),
        )
        return x.new_empty(x.shape)

    def pairwise_setup(ctx, inputs, output):
        x, y, squared = inputs
        ctx.save_for_backward(x, y, output)
        ctx.squared = squared

    def pairwise_backward(ctx, grad):
        x, y, dist = ctx.saved_tensors
        grad_x, grad_y = lib_ops._pairwise_distance_backward(grad, x, y, dist, ctx.squared)
        return grad_x, grad_y, None

    torch.library.register_autograd(f"{ns}::pairwise_distance", pairwise_backward, setup_context=pairwise_setup)

    def mine_setup(ctx, inputs, output):
        x, _labels = inputs
        d_ap, d_an, idx_p, idx_n = output
        ctx.save_for_backward(x, idx_p, idx_n, d_ap, d_an)

    def mine_backward(ctx, grad_ap, grad_an, _grad_idx_p, _grad_idx_n):
        x, idx_p, idx_n, d_ap, d_an = ctx.saved_tensors
        # An output that did not reach the loss has no gradient; it contributes nothing.
        if grad_ap is None:
            grad_ap = torch.zeros_like(d_ap)
        if grad_an is None:
            grad_an = torch.zeros_like(d_an)
        grad_x = lib_ops._batch_hard_mine_backward(grad_ap, grad_an, x, idx_p, idx_n, d_ap, d_an)
        return grad_x, None

    torch.library.register_autograd(f"{ns}::batch_hard_mine", mine_backward, setup_context=mine_setup)

    refuse_double_backward(ns, ("_pairwise_distance_backward", "_batch_hard_mine_backward"))
