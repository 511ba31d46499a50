"""Count the GPU kernel launches of batch-hard mining + soft-margin triplet loss, forward + backward, without a
GPU: the fused op (bdb_ext) against the reference code's eager form, at N=128, D=1536 (kernels.md's target
shape) unless told otherwise.

How a launch is counted, on the CPU:
- ATen: the torch profiler records every op the step dispatches, nested ones included. A leaf op (one that
  calls no other op) runs one kernel on CUDA unless it only allocates, views or reads metadata
  (``NO_KERNEL``); a host read of a device value (``_local_scalar_dense``: a copy and a sync) is counted
  apart.
- bdb_ext: the fused ops run from the CUDA emulation library (tests/emulated_library.py: the unmodified .cu
  host code and kernels), whose launch log gives each ``__global__`` launch with its grid; the ATen ops its
  host code calls are seen by the profiler like any other.

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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bdb_ext import reference  # noqa: E402
from perf_model import LAUNCH_FLOOR_US  # noqa: E402

__all__ = ["NO_KERNEL", "count_step"]

# Leaf ops that launch nothing on CUDA: allocation, views, metadata.
NO_KERNEL = {
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::view", "aten::as_strided", "aten::detach",
    "aten::alias", "aten::t", "aten::transpose", "aten::expand", "aten::select", "aten::slice", "aten::unsqueeze",
    "aten::squeeze", "aten::_reshape_alias", "aten::reshape", "aten::resize_", "aten::set_", "aten::lift_fresh",
    "aten::lift_fresh_copy", "aten::result_type", "aten::is_nonzero", "aten::size", "aten::stride", "aten::numel",
    "aten::contiguous", "aten::narrow", "aten::permute", "aten::unbind", "aten::diagonal", "aten::_unsafe_view",
    "detach", "aten::new_empty", "aten::new_empty_strided",
}
HOST_READS = {"aten::_local_scalar_dense", "aten::item"}


def _leaf_counts(prof) -> tuple[collections.Counter, int]:
    kernels: collections.Counter = collections.Counter()
    host_reads = 0
    events = [e for e in prof.events() if e.name.startswith("aten::") or e.name == "detach"]
    has_child = {id(e.cpu_parent) for e in events if e.cpu_parent is not None}
    for e in events:
        if id(e) in has_child:
            continue
        if e.name in HOST_READS:
            host_reads += 1
        elif e.name not in NO_KERNEL:
            kernels[e.name] += 1
    return kernels, host_reads


def count_step(step, emu_ops=None) -> dict:
    """Launches of one call of ``step()`` (forward + backward): ATen kernels by op, bdb kernels by family,
    host reads."""
    if emu_ops is not None:
        emu_ops._start_launch_recording(1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    bdb: collections.Counter = collections.Counter()
    if emu_ops is not None:
        for line in emu_ops._stop_launch_recording().splitlines():
            name = line.split("\t")[0]
            bdb[name.split("(")[0].split("<")[0].replace("void ", "")] += 1
    aten, host_reads = _leaf_counts(prof)
    return {"aten": aten, "bdb": bdb, "host_reads": host_reads,
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
    print(f"launch-floor prediction at N={args.n}, D={args.d}: fused {fused_us:.0f} us, reference {ref_us:.0f} us "
          f"(+ its host syncs), ratio {ref_us / fused_us:.1f}x")


if __name__ == "__main__":
    main()
