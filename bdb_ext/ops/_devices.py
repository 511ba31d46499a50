"""The device rule of every op, for its fake (meta) kernel.

The C++ host code checks devices with ``check_on_device`` (csrc/host/tensor_checks.h). A call with a
meta tensor among its arguments never reaches it: the dispatcher sends it to the op's fake kernel,
which would return an empty tensor on x's device (uninitialised memory presented as a result). So
each fake kernel applies the same rule, with the same message: every tensor argument on the main
input's device, the rect also allowed on the CPU. All-meta calls (shape inference) and fake tensors
under torch.compile pass; a meta tensor mixed with real ones, or two real devices mixed, is refused.
"""

from __future__ import annotations

import torch

__all__ = ["check_devices"]


def check_devices(op: str, anchor: tuple[str, torch.Tensor], *others: tuple[str, torch.Tensor], cpu_ok: tuple[str, ...] = ()) -> None:
    """Raise RuntimeError unless every ``(name, tensor)`` in ``others`` is on the anchor's device
    (or on the CPU, for the names in ``cpu_ok``)."""
    anchor_name, anchor_tensor = anchor
    device = anchor_tensor.device
    for name, t in others:
        if t.device == device or (name in cpu_ok and t.device.type == "cpu"):
            continue
        where = f"the CPU or on {anchor_name}'s device" if name in cpu_ok else f"{anchor_name}'s device"
        raise RuntimeError(f"bdb_ext::{op}: {name} must be on {where} ({device}), got {t.device}")
