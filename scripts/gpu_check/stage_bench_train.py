"""Stage bench_train: the full BDB training step, fused path against reference path, at the paper's
shape (ResNet-50, 384 x 128, batch 128 = 32 ids x 4, bf16 autocast, channels_last).

Steps interleaved (fused, reference, fused, ...) after warm-up; median step time, images/s and the
step's peak memory per path; ratio reference / fused.
"""

from __future__ import annotations

import sys

import torch

from bench_common import time_group
from common import Stage, StageSkipped, run_stage
from timing import peak_bytes
from train_step import PAPER, REHEARSAL, build_train_step


def body(stage: Stage) -> None:
    try:
        import torchvision  # noqa: F401 - BDBNet's trunk
    except ImportError as error:
        raise StageSkipped(f"torchvision is not importable ({error}): BDBNet cannot be built") from error
    shape = REHEARSAL if stage.rehearse else PAPER
    amp: torch.dtype | None = torch.bfloat16
    if stage.rehearse:
        # bf16 autocast on the CPU is slow, and reaches the CPU mining kernel's internal GEMM (which then
        # fails with "expected scalar type Float but found BFloat16"); the GPU run is the bf16 one.
        amp = None
        stage.note(f"rehearsal: {shape} in float32 on the CPU (the CPU kernels), host-clock timing")
    stage.results.update(shape=vars(shape), amp=str(amp or torch.float32).replace("torch.", ""), channels_last=True)
    factories = {name: (lambda fused=fused: build_train_step(fused, shape, stage.device, amp, channels_last=True))
                 for name, fused in (("fused", True), ("reference", False))}
    steps = {name: factory() for name, factory in factories.items()}
    stage.checkpoint()
    timed = time_group(stage, {name: (lambda s=s: s) for name, s in steps.items()})
    for name, step in steps.items():
        if "error" not in timed[name]:
            timed[name]["peak_bytes"] = peak_bytes(step, stage.device)
            timed[name]["images_per_s"] = round(shape.batch / (timed[name]["median_us"] * 1e-6), 1)
        else:
            stage.fail(f"{name} step raised: {timed[name]['error']}")
    stage.results["variants"] = timed
    fused, ref = timed["fused"].get("median_us"), timed["reference"].get("median_us")
    if fused and ref:
        stage.results["reference_over_fused"] = round(ref / fused, 3)
        stage.headline = (f"{shape.backbone} {shape.height}x{shape.width} batch {shape.batch} {stage.results['amp']} channels_last: "
                          f"fused {fused / 1e3:.1f} ms, reference {ref / 1e3:.1f} ms, "
                          f"reference/fused {stage.results['reference_over_fused']}")


if __name__ == "__main__":
    sys.exit(run_stage("bench_train", body))
