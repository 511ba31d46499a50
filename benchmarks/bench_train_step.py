"""A full BDB training step (forward, the four losses, backward, Adam step): fused path against reference path
and torch.compile of the reference path.

- fused: BDBNet(fused=True) (drop_pool kernel) + BDBLoss (batch_hard_triplet_loss kernel);
- reference: BDBNet(fused=False) (the reference code's mask, multiply, AdaptiveMaxPool2d) + the reference code's
  triplet loss (euclidean_dist + hard_example_mining) and the same cross entropies;
- compiled: the reference path with the model and the loss under torch.compile (inductor; graph breaks allowed,
  as a user would compile it). Compiling ResNet-50 forward and backward took about a minute on the 2-core CI
  machine, so the pytest cases (CI's benchmark smoke run) include it only on CUDA and with BDB_BENCH_FULL=1;
  the script always runs it.

All draw the same rectangle each step. Shapes: the paper's (ResNet-50, batch 128 = 32 x 4, 384x128) on CUDA;
a reduced one on the CPU (ResNet-50, batch 16 = 4 x 4, 128x64), the paper's too with BDB_BENCH_FULL=1.
Run with pytest-benchmark (`pytest benchmarks/bench_train_step.py`), or as a script for a printed ratio:
`python benchmarks/bench_train_step.py [--repeats N]`.
"""

from __future__ import annotations

import argparse
import time

import pytest
import torch
from torch import nn

from bdb_ext import reference
from bdb_ext.losses.bdb_loss import BDBLoss
from bdb_ext.models import BDBNet
from bench_utils import benchmark_devices, full_size_enabled, interleaved_medians, synchronized

PAPER = {"backbone": "resnet50", "ids": 32, "k": 4, "height": 384, "width": 128}
REDUCED = {"backbone": "resnet50", "ids": 4, "k": 4, "height": 128, "width": 64}


class ReferenceLoss(nn.Module):
    """The four terms with the reference code's triplet loss (N x N masks, host-side view)."""

    def __init__(self) -> None:
        super().__init__()
        self.cross_entropy = nn.CrossEntropyLoss(label_smoothing=0.1)

    def forward(self, out, labels):
        return (reference.triplet_loss_reference_code(out.global_feature.float(), labels)
                + reference.triplet_loss_reference_code(out.bdb_feature.float(), labels)
                + self.cross_entropy(out.global_logits.float(), labels)
                + self.cross_entropy(out.bdb_logits.float(), labels))


VARIANTS = ("fused", "reference", "compiled")


def make_step(variant: str, shape: dict, device: str, dtype: torch.dtype | None = None):
    """A closure running one training step of ``variant`` (one of VARIANTS) at ``shape``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    torch.manual_seed(0)
    fused = variant == "fused"
    model = BDBNet(shape["ids"], shape["backbone"], pretrained=False, fused=fused).to(device)
    model.drop_pool.generator = torch.Generator(device).manual_seed(1)
    model.train()
    criterion = BDBLoss() if fused else ReferenceLoss()
    forward = torch.compile(model) if variant == "compiled" else model
    loss_fn = torch.compile(criterion) if variant == "compiled" else criterion
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
    n = shape["ids"] * shape["k"]
    images = torch.randn(n, 3, shape["height"], shape["width"], device=device)
    labels = torch.arange(shape["ids"], device=device).repeat_interleave(shape["k"])

    def step():
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            out = forward(images)
            loss = loss_fn(out, labels)
        loss = loss.total if fused else loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return synchronized(step, device)


def _cases():
    for device in benchmark_devices():
        shapes = [("reduced", REDUCED)] + ([("paper", PAPER)] if full_size_enabled(device) else [])
        if device == "cuda":
            shapes = [("paper", PAPER)]
        for name, shape in shapes:
            variants = VARIANTS if device == "cuda" or full_size_enabled(device) else VARIANTS[:2]
            for variant in variants:
                yield pytest.param(device, name, shape, variant, id=f"{device}-{name}-{variant}")


@pytest.mark.parametrize("device, shape_name, shape, variant", list(_cases()))
def test_train_step(benchmark, device, shape_name, shape, variant):
    benchmark.group = f"train step {device} {shape_name}"
    benchmark.extra_info.update({"device": device, "torch": torch.__version__, "variant": variant, **shape})
    step = make_step(variant, shape, device)
    step()  # warm-up (allocator, oneDNN/cuDNN plans)
    benchmark.pedantic(step, rounds=3, iterations=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", choices=("reduced", "paper"), default=None)
    parser.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    args = parser.parse_args()
    shape_name = args.shape or ("paper" if args.device.startswith("cuda") else "reduced")
    shape = PAPER if shape_name == "paper" else REDUCED
    dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    steps = {v: make_step(v, shape, args.device, dtype) for v in VARIANTS}
    started = time.perf_counter()
    for step in steps.values():  # two warm-up steps each: the compiled variant compiles in them
        step()
        step()
    print(f"warm-up and compile: {time.perf_counter() - started:.0f} s")
    median = interleaved_medians(steps, args.repeats, warmup=0)  # rotated rounds: load changes hit all alike
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, shape {shape_name} "
          f"{shape}, amp {args.amp}, median of {args.repeats} interleaved rounds")
    for variant, value in median.items():
        print(f"  {variant:<9} median {1000 * value:8.1f} ms")
    print(f"  reference / fused = {median['reference'] / median['fused']:.3f}, "
          f"compiled / fused = {median['compiled'] / median['fused']:.3f}")


if __name__ == "__main__":
    main()
