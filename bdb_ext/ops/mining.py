"""The metric-learning ops: ``pairwise_distance``, ``batch_hard_mine`` and ``batch_hard_triplet_loss``.

Reading order for one op: the public function, its argument handling (``_<op>``, which takes the
``torch.ops`` namespace first), its fake kernel, its autograd Function (setup_context, backward, forward-mode
jvp; forward and vmap come from ``_common.OpFunction``). The C++ side is ``csrc/schemas.h`` (schema),
``csrc/cpu/mining_cpu.cpp`` and ``csrc/cuda/mining_cuda.cu`` (kernels; the loss on the mined pairs,
``triplet_loss_from_mined``: ``csrc/cpu/triplet_loss_cpu.cpp``, ``csrc/cuda/triplet_loss_cuda.cu``).
``register_mining_ops`` registers the Python parts for a ``torch.ops`` namespace: ``bdb_ext``, and the test-only
``bdb_ext_emu``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ._common import (
    OpFunction,
    call_backward_op,
    check_devices,
    check_tensor,
    register_op,
    under_torch_func,
)

__all__ = [
    "REDUCTIONS",
    "batch_hard_mine",
    "batch_hard_triplet_loss",
    "check_margin",
    "check_reduction",
    "pairwise_distance",
    "register_mining_ops",
]

REDUCTIONS = ("mean", "sum", "none")


def check_margin(margin: object) -> float | None:
    """The one margin rule of every triplet loss: None (soft margin) or a finite float >= 0.

    0 is a legal hard margin (the loss is max(0, d_ap - d_an)); a negative margin would reward
    negatives that are closer than the positive, so it is refused.
    """
    if margin is None:
        return None
    if isinstance(margin, bool) or not isinstance(margin, (int, float)):
        raise TypeError(f"margin must be a finite float >= 0 or None (soft margin), got {type(margin).__name__}")
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite float >= 0 (or None for the soft margin), got {margin!r}")
    return float(margin)


def check_reduction(reduction: object) -> str:
    """``reduction`` if it is one of :data:`REDUCTIONS`, else a ValueError naming it."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def _pair_tangent(x: torch.Tensor, x_tangent: torch.Tensor, other: torch.Tensor, distance: torch.Tensor,
                  chosen: torch.Tensor) -> torch.Tensor:
    # d |x_i - x_j| = (x_i - x_j) . (t_i - t_j) / |x_i - x_j| for the chosen j; 0 at distance 0 (as the
    # backward) and where no pair was chosen.
    j = other.clamp(min=0)
    dot = ((x - x[j]) * (x_tangent - x_tangent[j])).sum(1)
    usable = chosen & (distance > 0)
    safe = torch.where(usable, distance, torch.ones_like(distance))
    return torch.where(usable, dot / safe, torch.zeros_like(dot))


# --- pairwise_distance ----------------------------------------------------------------------------


def pairwise_distance(x: torch.Tensor, y: torch.Tensor | None = None, squared: bool = False) -> torch.Tensor:
    """Euclidean distances between the rows of ``x`` and ``y``.

    Args:
        x: (N, D) float32/float64/float16/bfloat16.
        y: (M, D), same dtype and device; ``None`` means ``x``.
        squared: return squared distances.

    Returns:
        (N, M) in x's dtype (fp16/bf16 accumulate in fp32; under autocast fp16/bf16 inputs run in
        float32). Pairs close enough for |a|^2 + |b|^2 - 2ab to cancel are measured as
        sum((a - b)^2). Differentiable in x and y in reverse and forward mode; the derivative of a zero
        distance is 0 (as torch.cdist), never NaN.
    """
    return _pairwise_distance(torch.ops.bdb_ext, x, y, squared)


def _pairwise_distance(ops: Any, x: torch.Tensor, y: torch.Tensor | None = None, squared: bool = False) -> torch.Tensor:
    check_tensor("x", x)
    if y is None:
        y = x
    check_tensor("y", y)
    # bool(squared) would read squared="no" as True: only a real bool is a choice of distance.
    if not isinstance(squared, bool):
        raise TypeError(f"pairwise_distance: squared must be a bool, got {type(squared).__name__} {squared!r}")
    if under_torch_func():
        return _PairwiseDistance.apply(ops, x, y, squared)
    return ops.pairwise_distance(x, y, squared)


def _pairwise_distance_fake(x, y, squared):
    check_devices("pairwise_distance", ("x", x), ("y", y))
    torch._check(x.dim() == 2 and y.dim() == 2, lambda: "pairwise_distance: x and y must be 2-D (N, D)")
    torch._check(x.shape[1] == y.shape[1], lambda: "pairwise_distance: x and y must have the same D")
    return x.new_empty((x.shape[0], y.shape[0]))


def _pairwise_distance_backward_fake(grad, x, y, dist, squared):
    check_devices("_pairwise_distance_backward", ("x", x), ("y", y), ("grad", grad), ("dist", dist))
    return x.new_empty(x.shape), y.new_empty(y.shape)


class _PairwiseDistance(OpFunction):
    op_name = "pairwise_distance"

    @staticmethod
    def setup_context(ctx, inputs, output):
        ops, x, y, squared = inputs
        ctx.ops = ops
        ctx.squared = squared
        ctx.save_for_backward(x, y, output)
        ctx.save_for_forward(x, y, output)

    @staticmethod
    def backward(ctx, grad):
        x, y, dist = ctx.saved_tensors
        grad_x, grad_y = call_backward_op(
            ctx.ops, "_pairwise_distance_backward", grad, x, y, dist, ctx.squared
        )
        return None, grad_x, grad_y, None

    @staticmethod
    def jvp(ctx, _ops_tangent, x_tangent, y_tangent, _squared_tangent):
        x, y, dist = ctx.saved_tensors
        # d |x_i - y_j|^2 = 2 (x_i - y_j) . (tx_i - ty_j), in the direct form (no cancellation).
        tx = torch.zeros_like(x) if x_tangent is None else x_tangent
        ty = torch.zeros_like(y) if y_tangent is None else y_tangent
        half = ((x[:, None, :] - y[None, :, :]) * (tx[:, None, :] - ty[None, :, :])).sum(-1)
        if ctx.squared:
            return 2 * half
        positive = dist > 0
        return torch.where(positive, half / torch.where(positive, dist, torch.ones_like(dist)), torch.zeros_like(half))


# --- batch_hard_mine ------------------------------------------------------------------------------


def batch_hard_mine(
    x: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hardest positive and hardest negative of every anchor of a batch, by Euclidean distance.

    Args:
        x: (N, D) embeddings, float32/float64/float16/bfloat16.
        labels: (N,) int64 identities on x's device; any values, any number of samples each.

    Returns:
        (d_ap, d_an, idx_p, idx_n), each (N,). For anchor i: idx_p = the j != i with
        labels[j] == labels[i] farthest from x[i], d_ap its distance (no other sample of the
        identity: d_ap = 0, idx_p = i); idx_n = the j with labels[j] != labels[i] closest to
        x[i], d_an its distance (none: d_an = inf, idx_n = -1). Ties go to the smallest index.
        d_ap and d_an are in x's dtype (float32 for fp16/bf16 under autocast), measured as
        sqrt(sum((x_i - x_j)^2)), and differentiable in x in reverse and forward mode through the
        chosen pairs (the backward touches only those 2N pairs); the indices are int64.
    """
    return _batch_hard_mine(torch.ops.bdb_ext, x, labels)


def _batch_hard_mine(ops: Any, x: torch.Tensor, labels: torch.Tensor):
    check_tensor("x", x)
    check_tensor("labels", labels)
    if under_torch_func():
        return _BatchHardMine.apply(ops, x, labels)
    return ops.batch_hard_mine(x, labels)


def _batch_hard_mine_fake(x, labels):
    check_devices("batch_hard_mine", ("x", x), ("labels", labels))
    torch._check(x.dim() == 2, lambda: "batch_hard_mine: x must be 2-D (N, D)")
    n = x.shape[0]
    index = x.new_empty((n,), dtype=torch.int64)
    return x.new_empty((n,)), x.new_empty((n,)), index, torch.empty_like(index)


def _batch_hard_mine_backward_fake(grad_ap, grad_an, x, idx_p, idx_n, d_ap, d_an):
    check_devices("_batch_hard_mine_backward", ("x", x), ("grad_ap", grad_ap), ("grad_an", grad_an), ("idx_p", idx_p),
                  ("idx_n", idx_n), ("d_ap", d_ap), ("d_an", d_an))
    return x.new_empty(x.shape)


class _BatchHardMine(OpFunction):
    op_name = "batch_hard_mine"

    @staticmethod
    def setup_context(ctx, inputs, output):
        ops, x, _labels = inputs
        d_ap, d_an, idx_p, idx_n = output
        ctx.ops = ops
        ctx.mark_non_differentiable(idx_p, idx_n)
        # Outputs without a gradient stay None in backward instead of costing a zeros launch each (the
        # indices never have one).
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, idx_p, idx_n, d_ap, d_an)
        ctx.save_for_forward(x, idx_p, idx_n, d_ap, d_an)

    @staticmethod
    def backward(ctx, grad_ap, grad_an, _grad_idx_p, _grad_idx_n):
        x, idx_p, idx_n, d_ap, d_an = ctx.saved_tensors
        # An output that did not reach the loss has no gradient; it contributes nothing.
        if grad_ap is None:
            grad_ap = torch.zeros_like(d_ap)
        if grad_an is None:
            grad_an = torch.zeros_like(d_an)
        grad_x = call_backward_op(
            ctx.ops, "_batch_hard_mine_backward", grad_ap, grad_an, x, idx_p, idx_n,
            d_ap, d_an,
        )
        return None, grad_x, None

    @staticmethod
    def jvp(ctx, _ops_tangent, x_tangent, _labels_tangent):
        x, idx_p, idx_n, d_ap, d_an = ctx.saved_tensors
        every = torch.ones_like(idx_p, dtype=torch.bool)
        return (
            _pair_tangent(x, x_tangent, idx_p, d_ap, every),
            _pair_tangent(x, x_tangent, idx_n, d_an, idx_n >= 0),
            None,
            None,
        )


# --- batch_hard_triplet_loss ----------------------------------------------------------------------


def batch_hard_triplet_loss(
    x: torch.Tensor,
    labels: torch.Tensor,
    margin: float | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) as in the Batch DropBlock reference code.

    Args:
        x: (N, D) embeddings; labels: (N,) int64 on x's device.
        margin: None for the soft margin log(1 + exp(d_ap - d_an)) (the reference code's
            default), else the hard margin max(0, d_ap - d_an + margin), a finite float >= 0.
        reduction: "mean" (over the anchors that have a negative; 0 when none has one),
            "sum", or "none" ((N,) per-anchor losses, 0 for anchors without a negative).

    Returns:
        The loss in x's dtype (float32 for fp16/bf16 under autocast), attached to x's graph even
        when it is 0.
    """
    return _batch_hard_triplet_loss(torch.ops.bdb_ext, x, labels, margin, reduction)


def _batch_hard_triplet_loss(
    ops: Any, x: torch.Tensor, labels: torch.Tensor, margin: float | None = None, reduction: str = "mean"
) -> torch.Tensor:
    margin = check_margin(margin)
    check_reduction(reduction)
    d_ap, d_an, _, idx_n = _batch_hard_mine(ops, x, labels)
    return _triplet_loss_from_mined(ops, d_ap, d_an, idx_n, margin, reduction)


def _triplet_loss_from_mined(ops: Any, d_ap: torch.Tensor, d_an: torch.Tensor, idx_n: torch.Tensor,
                             margin: float | None, reduction: str) -> torch.Tensor:
    """The loss on batch_hard_mine's outputs, one fused kernel each way (``triplet_loss_from_mined``).

    Anchors without a negative (idx_n < 0, d_an = inf) contribute 0 and get no gradient; their d_an is
    never read, so no inf enters the arithmetic.
    """
    if under_torch_func():
        return _TripletLossFromMined.apply(ops, d_ap, d_an, idx_n, margin, reduction)
    return ops.triplet_loss_from_mined(d_ap, d_an, idx_n, margin, reduction)


def _triplet_loss_from_mined_fake(d_ap, d_an, idx_n, margin, reduction):
    torch._check(d_ap.dim() == 1, lambda: "triplet_loss_from_mined: d_ap must be 1-D (N,)")
    torch._check(d_an.shape == d_ap.shape and idx_n.shape == d_ap.shape,
                 lambda: "triplet_loss_from_mined: d_an and idx_n must have d_ap's shape (N,)")
    if reduction == "none":
        return d_ap.new_empty(d_ap.shape)
    return d_ap.new_empty(())


def _triplet_loss_from_mined_backward_fake(grad, d_ap, d_an, idx_n, margin, reduction):
    return d_ap.new_empty(d_ap.shape), d_an.new_empty(d_an.shape)


class _TripletLossFromMined(OpFunction):
    op_name = "triplet_loss_from_mined"

    @staticmethod
    def setup_context(ctx, inputs, output):
        ops, d_ap, d_an, idx_n, margin, reduction = inputs
        ctx.ops = ops
        ctx.margin = margin
        ctx.reduction = reduction
        ctx.save_for_backward(d_ap, d_an, idx_n)
        ctx.save_for_forward(d_ap, d_an, idx_n)

    @staticmethod
    def backward(ctx, grad):
        d_ap, d_an, idx_n = ctx.saved_tensors
        grad_ap, grad_an = call_backward_op(
            ctx.ops, "_triplet_loss_from_mined_backward", grad, d_ap, d_an, idx_n,
            ctx.margin, ctx.reduction,
        )
        return None, grad_ap, grad_an, None, None, None

    @staticmethod
    def jvp(ctx, _ops_tangent, d_ap_tangent, d_an_tangent, _idx_n_tangent, _margin_tangent, _reduction_tangent):
        d_ap, d_an, idx_n = ctx.saved_tensors
        # Through the op's own derivative: the backward of a unit output gradient is d loss / d d_ap
        # and d loss / d d_an (per anchor for "none"; with the mean's 1 / count for "mean"); anchors
        # without a negative have both 0, whatever their tangents.
        ones = d_ap.new_ones(d_ap.shape if ctx.reduction == "none" else ())
        slope_ap, slope_an = ctx.ops._triplet_loss_from_mined_backward(ones, d_ap, d_an, idx_n, ctx.margin,
                                                                       ctx.reduction)
        tangent = torch.zeros_like(d_ap)
        if d_ap_tangent is not None:
            tangent = tangent + slope_ap * d_ap_tangent
        if d_an_tangent is not None:
            has_negative = idx_n >= 0
            tangent = tangent + torch.where(has_negative, slope_an * d_an_tangent, torch.zeros_like(tangent))
        return tangent if ctx.reduction == "none" else tangent.sum()


# --- Registration ---------------------------------------------------------------------------------


def register_mining_ops(ns: str) -> None:
    """Register the fake kernels, autograd and autocast of ``torch.ops.<ns>``'s mining ops."""
    # Distances and their gradients need float32: under autocast fp16/bf16 inputs are promoted, as for
    # ATen's cdist and pdist.
    register_op(ns, _PairwiseDistance, _pairwise_distance_fake, _pairwise_distance_backward_fake,
                autocast_dtype=torch.float32)
    register_op(ns, _BatchHardMine, _batch_hard_mine_fake, _batch_hard_mine_backward_fake,
                autocast_dtype=torch.float32)
    # The loss runs in the distances' float32 under autocast, as the mining it follows.
    register_op(ns, _TripletLossFromMined, _triplet_loss_from_mined_fake, _triplet_loss_from_mined_backward_fake,
                autocast_dtype=torch.float32)
