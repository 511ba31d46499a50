"""Count the GPU kernel launches of batch-hard mining + soft-margin triplet loss, forward + backward, without a
GPU: the fused op (bdb_ext) against the reference code's eager form, at N=128, D=1536 (kernels.md's target
shape) unless told otherwise.

How a launch is counted, on the CPU:
- ATen: a TorchDispatchMode sees every op the step sends to a backend kernel (after autograd and
  decompositions, not the ops a kernel calls inside itself). Each is one CUDA kernel unless it only
  allocates, views or reads metadata (``NO_KERNEL``); a host read of a device value
  (``_local_scalar_dense``: a copy and a sync) is counted apart.
- bdb_ext: the fused ops run from the CUDA emulation library (tests/emulated_library.py: the unmodified .cu
  host code and kernels), whose launch log gives each ``__global__`` launch; the profiler shows any ATen op
  that their host code runs inside them (a workspace fill would be a launch too).

Prints both counts and the launch-floor prediction (every kernel at this size is launch-bound:
benchmarks/perf_model.LAUNCH_FLOOR_US each). Run: ``PYTHONPATH=. python benchmarks/count_launches.py``.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from perf_model import LAUNCH_FLOOR_US

from bdb_ext import reference

__all__ = ["NO_KERNEL", "count_step"]

# Dispatched ops that launch nothing on CUDA: allocation and metadata (views are recognised by their schema).
NO_KERNEL = {"aten::empty", "aten::empty_strided", "aten::empty_like", "aten::new_empty", "aten::new_empty_strided",
             "aten::resize_", "aten::set_", "aten::lift_fresh", "aten::result_type", "aten::sym_size",
             "aten::sym_stride", "aten::sym_numel", "aten::sym_storage_offset"}
HOST_READS = {"aten::_local_scalar_dense"}
# ATen ops that launch a kernel when a bdb op's host code runs them.
_LAUNCHING_INSIDE = ("aten::fill_", "aten::zero_", "aten::copy_", "aten::mm", "aten::addmm", "aten::sum")


class _Dispatched(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.aten: collections.Counter = collections.Counter()
        self.host_reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name in HOST_READS:
            self.host_reads += 1
        elif name.startswith("aten::") and not func.is_view and name not in NO_KERNEL:
            self.aten[name] += 1
        return func(*args, **(kwargs or {}))


def count_step(step, emu_ops=None) -> dict:
    """Launches of one call of ``step()`` (forward + backward): ATen kernels by op, bdb kernels by family
    (``emu_ops``: the bdb_ext_emu namespace whose launch log to read), host reads."""
    if emu_ops is not None:
        emu_ops._start_launch_recording(1)
    with profile(activities=[ProfilerActivity.CPU]) as prof, _Dispatched() as dispatched:
        step()
    bdb: collections.Counter = collections.Counter()
    if emu_ops is not None:
        for line in emu_ops._stop_launch_recording().splitlines():
            bdb[line.split("\t")[0].split("(")[0].split("<")[0].replace("void ", "")] += 1
    inside = collections.Counter()
    for e in prof.events():
        parent = e.cpu_parent
        while parent is not None and "bdb_ext" not in parent.name:
            parent = parent.cpu_parent
        if parent is not None and e.name in _LAUNCHING_INSIDE:
            inside[f"{e.name} (inside {parent.name})"] += 1
    aten = dispatched.aten + inside
    return {"aten": aten, "bdb": bdb, "host_reads": dispatched.host_reads,
            "launches": sum(aten.values()) + sum(bdb.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--d", type=int, default=1536)
    parser.add_argument("--k", type=int, default=4, help="samples per identity (P x K batch)")
    args = parser.parse_args()
    from emulated_library import load_emulated_library

    emu = load_emulated_library()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(args.n, args.d, generator=g)
    labels = torch.arange(args.n // args.k).repeat_interleave(args.k)

    def run(fn):
        x = x0.clone().requires_grad_()
        return lambda: fn(x, labels).backward()

    fused = count_step(run(emu.batch_hard_triplet_loss), torch.ops.bdb_ext_emu)
    ref = count_step(run(reference.triplet_loss_reference_code))
    for name, c in (("fused (bdb_ext, CUDA code under the emulator)", fused), ("reference code, eager", ref)):
        print(f"{name}: {c['launches']} launches, {c['host_reads']} host reads")
        for k, v in sorted(c["bdb"].items()):
            print(f"    {v:3d}  {k}")
        for k, v in sorted(c["aten"].items()):
            print(f"    {v:3d}  {k}")
    fused_us = fused["launches"] * LAUNCH_FLOOR_US
    ref_us = ref["launches"] * LAUNCH_FLOOR_US
    print(f"launch-floor prediction at N={args.n}, D={args.d} ({LAUNCH_FLOOR_US:g} us a launch): "
          f"fused {fused_us:.0f} us, reference {ref_us:.0f} us, ratio {ref_us / fused_us:.1f}x")


if __name__ == "__main__":
    main()
