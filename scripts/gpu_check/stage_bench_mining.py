"""Stage bench_mining: batch-hard mining + soft-margin triplet loss, fwd and fwd+bwd, float32,
N in {128, 512, 2048, 4096} x D in {1536, 2048}, P x K batches with K = 4.

Variants: fused (batch_hard_triplet_loss), reference (the reference code: addmm distances, N x N
masks, SoftMarginLoss), mask (the mask form of later toolkits), pml (pytorch-metric-learning's
BatchHardMiner + TripletMarginLoss(smooth_loss), when importable), compiled (torch.compile of the
reference form). Per variant: median time and the peak memory its step allocates; the fused op's
peak is compared with one N x N float32 matrix (kernels.md: no N x N allocation on CUDA).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from bdb_ext import reference
from bench_common import compile_fn, measure_cases, over_fused, speedup_targets, time_group
from common import Stage, load_ops, run_stage
from perf import model_available, predicted
from timing import peak_bytes

K = 4
GPU_SIZES = [(n, d) for n in (128, 512, 2048, 4096) for d in (1536, 2048)]
REHEARSAL_SIZES = [(8, 16), (16, 24)]
PASSES = ("fwd+bwd", "fwd")
TARGET_VS_REFERENCE_N128 = 5.0  # kernels.md, fwd+bwd at N=128, D=1536


def pml_loss() -> tuple[Callable[..., torch.Tensor] | None, str | None]:
    """pytorch-metric-learning's batch-hard soft-margin loss, or (None, why)."""
    try:
        from pytorch_metric_learning.distances import LpDistance
        from pytorch_metric_learning.losses import TripletMarginLoss
        from pytorch_metric_learning.miners import BatchHardMiner
        from pytorch_metric_learning.reducers import MeanReducer
    except ImportError as error:
        return None, f"pytorch-metric-learning not importable ({error}): its column is empty"
    distance = LpDistance(normalize_embeddings=False)
    miner = BatchHardMiner(distance=distance)
    loss_fn = TripletMarginLoss(margin=0.0, smooth_loss=True, distance=distance, reducer=MeanReducer())
    return (lambda x, labels: loss_fn(x, labels, miner(x, labels))), None


def _step(fn: Callable[..., torch.Tensor], x: torch.Tensor, labels: torch.Tensor, pass_: str) -> Callable[[], object]:
    if pass_ == "fwd":
        def forward():
            with torch.no_grad():
                return fn(x, labels)
        return forward
    xg = x.detach().requires_grad_(True)
    return lambda: torch.autograd.grad(fn(xg, labels), xg)


def run_case(stage: Stage, variants: dict[str, Callable[..., torch.Tensor]], n: int, d: int,
             pass_: str) -> dict[str, Any]:
    g = torch.Generator().manual_seed(n * 7 + d)
    x = torch.randn(n, d, generator=g).to(stage.device)
    labels = torch.arange(n // K).repeat_interleave(K)[torch.randperm(n, generator=g)].to(stage.device)
    row: dict[str, Any] = {"N": n, "D": d, "pass": pass_, "dtype": "float32", "K": K}
    if pass_ == "fwd":
        with torch.no_grad():
            fused, ref = variants["fused"](x, labels), reference.triplet_loss_reference_code(x, labels)
        row["fused_minus_reference"] = float((fused - ref).abs())
        if not torch.allclose(fused, ref, rtol=1e-4, atol=1e-5):
            stage.fail(f"mining N={n} D={d}: fused loss {float(fused)} != reference {float(ref)}")
    factories = {name: (lambda fn=fn: _step(fn, x, labels, pass_)) for name, fn in variants.items()}
    timed = time_group(stage, factories)
    for name, factory in factories.items():
        if "error" not in timed[name]:
            timed[name]["peak_bytes"] = peak_bytes(factory(), stage.device)
    row["variants"] = timed
    row["nxn_float32_bytes"] = n * n * 4
    fused_t = timed.get("fused", {})
    if fused_t.get("median_us"):
        row.update(predicted("mining_loss", pass_, {"N": n, "D": d}, torch.float32))
        row["pct_of_floor"] = round(100 * row["floor_us"] / fused_t["median_us"], 1) if row["floor_us"] else None
        row.update(over_fused(timed, fused_t["median_us"], ("reference", "mask", "pml", "compiled")))
        if fused_t.get("peak_bytes") is not None:
            row["fused_peak_below_nxn"] = fused_t["peak_bytes"] < row["nxn_float32_bytes"]
    return row


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        label = f"mining {r['pass']} N={r['N']} D={r['D']}"
        reference_case = (r["N"], r["D"], r["pass"]) == (128, 1536, "fwd+bwd")
        out += speedup_targets(label, r, TARGET_VS_REFERENCE_N128 if reference_case else None)
        if r["N"] == 4096 and "fused_peak_below_nxn" in r:
            out.append({"target": f"{label}: no N x N allocation", "value": r["variants"]["fused"]["peak_bytes"],
                        "met": r["fused_peak_below_nxn"]})
    return out


def body(stage: Stage) -> None:
    ops = load_ops(stage)
    sizes = REHEARSAL_SIZES if stage.rehearse else GPU_SIZES
    have_model, why = model_available()
    if not have_model:
        stage.note(why)
    if stage.rehearse:
        stage.note(f"rehearsal: sizes {sizes}, emulated kernels, compile backend aot_eager, no peak memory on the CPU")
    variants: dict[str, Callable[..., torch.Tensor]] = {
        "fused": ops.batch_hard_triplet_loss,
        "reference": reference.triplet_loss_reference_code,
        "mask": reference.triplet_loss_mask_form,
    }
    pml, why = pml_loss()
    if pml is None:
        stage.note(why)
    else:
        variants["pml"] = pml
    variants["compiled"] = compile_fn(stage, reference.triplet_loss_reference_code)
    stage.results.update(cases=[], skipped=[], variants=list(variants))
    rows = measure_cases(stage, ((f"N={n} D={d} {pass_}", partial(run_case, stage, variants, n, d, pass_))
                                 for n, d in sizes for pass_ in PASSES), targets)
    first = next((r for r in rows if r["pass"] == "fwd+bwd"), None)
    if first and first["variants"].get("fused", {}).get("median_us"):
        stage.headline = (f"fwd+bwd N={first['N']} D={first['D']}: fused {first['variants']['fused']['median_us']:.1f} us, "
                          f"{first.get('reference_over_fused')}x reference, {first.get('compiled_over_fused')}x compiled; "
                          f"{len(rows)} cases")


if __name__ == "__main__":
    sys.exit(run_stage("bench_mining", body))
