"""What every bdb_ext op shares: argument checks, and the plumbing that registers an op's
autograd, autocast and vmap behaviour for one ``torch.ops`` namespace.

Each op's own math (fake kernel, derivatives) lives beside its public function in ``drop.py`` or
``mining.py``; this module only holds what both families use the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import torch
from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

__all__ = [
    "OpFunction",
    "RectLike",
    "as_rect_tensor",
    "call_backward_op",
    "check_tensor",
    "register_op",
    "under_torch_func",
]

RectLike = Union[torch.Tensor, Sequence[int]]

# Keeps the Library objects that hold this package's Python kernels alive (a dropped Library
# unregisters its kernels).
_LIBRARIES: dict[str, torch.library.Library] = {}


def _library(ns: str) -> torch.library.Library:
    if ns not in _LIBRARIES:
        _LIBRARIES[ns] = torch.library.Library(ns, "IMPL")
    return _LIBRARIES[ns]


# --- Argument checks --------------------------------------------------------------------------


def check_tensor(name: str, value: object) -> None:
    """TypeError naming ``name`` unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def as_rect_tensor(rect: RectLike) -> torch.Tensor:
    """``rect`` as the int64 tensor [top, left, height, width] the kernels read.

    A tensor is passed through unchanged (its dtype, shape and device are checked by the op); a
    sequence of 4 ints becomes a CPU tensor.
    """
    if isinstance(rect, torch.Tensor):
        return rect
    if isinstance(rect, (str, bytes)) or not isinstance(rect, Sequence):
        raise TypeError(
            f"rect must be an int64 tensor or a sequence of 4 ints [top, left, height, width], got {type(rect).__name__}"
        )
    if len(rect) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in rect):
        raise ValueError(f"rect must hold 4 ints [top, left, height, width], got {list(rect)!r}")
    return torch.tensor(rect, dtype=torch.int64)


def check_devices(op: str, anchor: tuple[str, torch.Tensor], *others: tuple[str, torch.Tensor],
                  cpu_ok: tuple[str, ...] = ()) -> None:
    """Raise RuntimeError unless every ``(name, tensor)`` in ``others`` is on the anchor's device (or on the CPU,
    for the names in ``cpu_ok``): the device rule of ``check_on_device`` (csrc/host/tensor_checks.h), for the fake
    kernels.

    Why the fake kernels need it: a call with a meta tensor among its arguments never reaches the C++ check, the
    dispatcher sends it to the fake kernel, which would return an empty tensor on x's device (uninitialised memory
    presented as a result). All-meta calls (shape inference) and fake tensors under torch.compile pass; a meta tensor
    mixed with real ones, or two real devices mixed, is refused with the C++ check's message.
    """
    anchor_name, anchor_tensor = anchor
    device = anchor_tensor.device
    for name, t in others:
        if t.device == device or (name in cpu_ok and t.device.type == "cpu"):
            continue
        where = f"the CPU or on {anchor_name}'s device" if name in cpu_ok else f"{anchor_name}'s device"
        raise RuntimeError(f"bdb_ext::{op}: {name} must be on {where} ({device}), got {t.device}")


# --- Autograd, forward AD and vmap --------------------------------------------------------------
#
# Each differentiable op has one torch.autograd.Function (forward, setup_context, backward, jvp, vmap)
# whose first input is the torch.ops namespace to run in. Two paths use it:
# - the op's Autograd-key kernel (``_register_function_autograd``) applies it to every call that needs
#   a derivative: backward, forward AD (torch.autograd.forward_ad), torch.compile and direct
#   ``torch.ops.<ns>.<op>`` calls; autocast, which the dispatcher runs before autograd, casts first;
# - under a torch.func transform (jvp, jacfwd, grad, vjp, jacrev, vmap, ...) the public functions
#   apply it themselves: torch.func intercepts a Python Function before the dispatcher, never from
#   inside a kernel.


class OpFunction(torch.autograd.Function):
    """Base of the ops' Functions. Input 0 is the ``torch.ops`` namespace; ``op_name`` names the op that
    ``forward`` runs (below autograd, so the Autograd-key kernel is not entered again). A subclass
    defines setup_context (which stores the namespace as ``ctx.ops``), backward and jvp."""

    op_name: str

    @classmethod
    def forward(cls, ops, *args):
        with torch._C._AutoDispatchBelowAutograd():
            return getattr(ops, cls.op_name)(*args)

    @classmethod
    def vmap(cls, info, in_dims, *args):
        """One call per batch entry, outputs stacked on dim 0. Correct for every op (rect and labels may
        be batched too), not fast: vmap over a fused op serves per-sample gradients and Jacobians."""
        results = []
        for i in range(info.batch_size):
            sliced = [a.select(d, i) if d is not None else a for a, d in zip(args, in_dims)]
            out = cls.apply(*sliced)
            results.append(out if isinstance(out, tuple) else (out,))
        stacked = tuple(torch.stack(parts) for parts in zip(*results))
        if len(stacked) == 1:
            return stacked[0], 0
        return stacked, (0,) * len(stacked)


def _differentiating_functorch_levels() -> list:
    kinds = (torch._C._functorch.TransformType.Grad, torch._C._functorch.TransformType.Jvp)
    return [k for k in (i.key() for i in retrieve_all_functorch_interpreters()) if k in kinds]


def under_torch_func() -> bool:
    """Whether a public function must apply its op's Function itself: under a torch.func transform, which
    intercepts a Python Function before the dispatcher. Never while compiling: Dynamo cannot trace a
    Function with a custom jvp, and the op's Autograd-key kernel gives compile the same derivatives."""
    return not torch.compiler.is_compiling() and torch._C._are_functorch_transforms_active()


def _without_setup_context(function: type[OpFunction]) -> type[torch.autograd.Function]:
    """``function`` as an old-style Function (setup_context called from forward). A Function with its own
    setup_context has its arguments bound by inspect.signature on every apply (about 3x the cost of a small
    op); only torch.func needs that form, and it never reaches the Autograd-key kernel."""

    def forward(ctx, *args):
        output = function.forward(*args)
        function.setup_context(ctx, args, output)
        return output

    members = {"forward": staticmethod(forward), "backward": staticmethod(function.backward),
               "jvp": staticmethod(function.jvp)}
    return type(f"{function.__name__}Autograd", (torch.autograd.Function,), members)


def _register_function_autograd(ns: str, function: type[OpFunction]) -> None:
    """Make ``function`` the autograd (reverse and forward mode) of ``torch.ops.<ns>.<op_name>``."""
    ops, op_name = getattr(torch.ops, ns), function.op_name
    qualname = f"{ns}::{op_name}"
    op = getattr(ops, op_name).default
    plain = _without_setup_context(function)

    def autograd_kernel(keyset, *args):
        if torch._C._are_functorch_transforms_active() and _differentiating_functorch_levels():
            raise RuntimeError(
                f"{qualname}: torch.func transforms that differentiate (grad, jvp, jacrev, ...) need the "
                f"Python entry point bdb_ext.ops.{op_name}, not the raw torch.ops op"
            )
        needs_grad = torch.is_grad_enabled() and torch._C._any_requires_grad(*args)
        if needs_grad or torch.autograd.forward_ad._current_level >= 0:
            return plain.apply(ops, *args)
        with torch._C._AutoDispatchBelowAutograd():
            return op.redispatch(keyset & torch._C._after_autograd_keyset, *args)

    _library(ns).impl(op_name, autograd_kernel, "Autograd", with_keyset=True)


def _refusal(name: str) -> RuntimeError:
    return RuntimeError(
        f"{name}: double backward (a second derivative through bdb_ext's backward: create_graph=True, "
        f"torch.func.hessian, grad of grad, ...) is not supported"
    )


def _is_higher_order_functorch() -> bool:
    # A backward run by torch.func sees the transform stack. The level being differentiated is on top
    # when torch.func.grad runs the backward (vjp/jacrev run it below their level); any other Grad or
    # Jvp level could differentiate this backward again.
    interpreters = retrieve_all_functorch_interpreters()
    on_top_grad = bool(interpreters) and interpreters[-1].key() == torch._C._functorch.TransformType.Grad
    return len(_differentiating_functorch_levels()) > (1 if on_top_grad else 0)


def call_backward_op(ops: Any, name: str, *args: Any) -> Any:
    """Call backward op ``name`` of namespace ``ops`` from a Function's backward; a second derivative through it
    is refused.

    Plain autograd: the op's own registered autograd (``_refuse_double_backward``) raises if the result
    is differentiated again. torch.func: the transform stack says whether a second derivative can
    follow; if not, the op runs without recording (torch.func always backpropagates with
    create_graph=True, and its graph must not hold a Python autograd kernel).
    """
    op = getattr(ops, name)
    if not torch._C._are_functorch_transforms_active():
        return op(*args)
    if _is_higher_order_functorch():
        raise _refusal(name)
    with torch.no_grad():
        return op(*args)


def _refuse_double_backward(ns: str, backward_op: str) -> None:
    """Register for ``ns::backward_op`` an autograd formula that raises a clear error."""
    name = f"{ns}::{backward_op}"

    def backward(ctx, *grads):
        raise _refusal(name)

    torch.library.register_autograd(name, backward, setup_context=lambda ctx, inputs, output: None)


# --- Autocast -----------------------------------------------------------------------------------


def _register_autocast(ns: str, op_name: str, dtype: torch.dtype | None) -> None:
    """Give ``torch.ops.<ns>.<op_name>`` an Autocast kernel (CPU and CUDA), as ATen's own ops have.

    dtype: the dtype the op runs in under autocast (fp16/bf16 inputs are cast to it; float64 is kept,
    as ATen's fp32 policy does), or None for an op that runs in its input's dtype. Either way the op
    runs with autocast off, so the ATen calls inside its kernels (matmuls in the mining kernels) keep
    the dtype the kernel expects instead of being autocast themselves.
    """
    for device_type in ("cpu", "cuda"):
        if not torch._C._is_autocast_available(device_type):  # a torch build without that backend
            continue
        if dtype is not None:
            torch.library.register_autocast(f"{ns}::{op_name}", device_type, dtype, lib=_library(ns))
            continue
        key = getattr(torch._C.DispatchKey, "Autocast" + torch._C._dispatch_key_for_device(device_type))
        op = getattr(getattr(torch.ops, ns), op_name).default

        def kernel(_keyset, *args, _op=op, _key=key):
            with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(_key)):
                return _op(*args)

        _library(ns).impl(op_name, kernel, key.name, with_keyset=True)


# --- Registration -------------------------------------------------------------------------------


def register_op(ns: str, function: type[OpFunction], fake: Callable[..., Any], backward_fake: Callable[..., Any],
                autocast_dtype: torch.dtype | None) -> None:
    """Register the Python parts of ``torch.ops.<ns>.<function.op_name>`` and of its backward op
    ``_<op_name>_backward``: fake kernels, autograd (from ``function``; the backward op refuses to be
    differentiated) and autocast (``autocast_dtype``, see ``_register_autocast``)."""
    backward_op = f"_{function.op_name}_backward"
    torch.library.register_fake(f"{ns}::{function.op_name}", fake)
    torch.library.register_fake(f"{ns}::{backward_op}", backward_fake)
    _register_function_autograd(ns, function)
    _refuse_double_backward(ns, backward_op)
    for name in (function.op_name, backward_op):
        _register_autocast(ns, name, autocast_dtype)
