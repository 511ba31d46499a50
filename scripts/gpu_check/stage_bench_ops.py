"""Stage bench_ops: the D2D copy baseline, then batch_drop_block and drop_pool(max) against the eager
reference code and torch.compile of it, at the paper's shape (128 x 2048 x 24 x 8), NCHW and
channels_last, float32 / bfloat16 / float16, passes fwd, bwd and fwd+bwd.

Per case: each variant's median (CUDA events, variants interleaved), the fused op's GB/s over its
nominal bytes (every input read once, every output written once), that as % of the copy bandwidth
measured here, the perf model's prediction and floor where benchmarks/perf_model.py exists, and the
ratios reference / fused and compiled / fused. The kernels.md targets are evaluated, not enforced.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import torch

from bdb_ext import reference
from bench_common import compile_fn, measure_cases, over_fused, speedup_targets, time_group
from common import Stage, load_ops, run_stage
from perf import DTYPE_NAMES, model_available, predicted, rate_row
from timing import interleaved_times, summarize_times

PAPER_SHAPE = (128, 2048, 24, 8)
REHEARSAL_SHAPE = (2, 8, 6, 4)
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
LAYOUTS = ("nchw", "channels_last")
OPS = ("drop_pool_max", "drop")
PASSES = ("fwd+bwd", "fwd", "bwd")
# kernels.md CUDA targets: reference / fused at fwd+bwd, and fused >= compiled on every pass.
TARGET_VS_REFERENCE = {"drop_pool_max": 5.0, "drop": 2.0}
TARGET_PCT_OF_FLOOR = 70.0


def paper_rect(h: int, w: int) -> list[int]:
    """The re-ID block: a third of the rows (rounded as the reference code does), the whole width."""
    rows = int(round(0.33 * h))
    return [h // 3, 0, rows, w]


def nominal_bytes(op: str, pass_: str, shape: tuple[int, ...], dtype: torch.dtype) -> int:
    """Bytes if every input is read once and every output written once (argmax: int64)."""
    n, c, h, w = shape
    size = torch.finfo(dtype).bits // 8
    full, pooled = n * c * h * w * size, n * c * (size + 8)
    per_pass = {"drop": {"fwd": 2 * full, "bwd": 2 * full},
                "drop_pool_max": {"fwd": full + pooled, "bwd": pooled + full}}[op]
    return sum(per_pass.values()) if pass_ == "fwd+bwd" else per_pass[pass_]


def _forward_fns(stage: Stage, ops: Any, rect: list[int]) -> dict[str, dict[str, Any]]:
    # The fused ops read a rect tensor on the data's device (no host sync), as the model calls them;
    # the reference code takes Python ints.
    rect_t = torch.tensor(rect, device=stage.device)
    return {
        "drop": {"fused": lambda x: ops.batch_drop_block(x, rect_t),
                 "reference": lambda x: reference.batch_drop_block(x, rect),
                 "compiled": compile_fn(stage, lambda x: reference.batch_drop_block(x, rect))},
        "drop_pool_max": {"fused": lambda x: ops.drop_pool(x, rect_t, "max")[0],
                          "reference": lambda x: reference.drop_pool(x, rect, "max"),
                          "compiled": compile_fn(stage, lambda x: reference.drop_pool(x, rect, "max"))},
    }


def _step(fn: Any, x: torch.Tensor, pass_: str) -> Any:
    if pass_ == "fwd":
        def forward():
            with torch.no_grad():
                return fn(x)
        return forward
    xg = x.detach().requires_grad_(True)
    if pass_ == "bwd":
        y = fn(xg)
        g = torch.randn_like(y)
        return lambda: torch.autograd.grad(y, xg, g, retain_graph=True)
    g = torch.randn_like(fn(xg))
    return lambda: torch.autograd.grad(fn(xg), xg, g)


def copy_baseline(stage: Stage, shape: tuple[int, ...]) -> dict[str, Any]:
    """Device-to-device copy of the fp32 map's size: the bandwidth every % below is relative to."""
    numel = 1
    for s in shape:
        numel *= s
    src = torch.randn(numel, device=stage.device)
    dst = torch.empty_like(src)
    warmup, reps = (1, 3) if stage.rehearse else (5, 30)
    times = interleaved_times({"copy": lambda: dst.copy_(src)}, stage.device, warmup=warmup, reps=reps)["copy"]
    row = summarize_times(times)
    moved = 2 * src.numel() * src.element_size()
    row.update(bytes=moved, gbps=round(moved / (row["median_us"] * 1e3), 1),
               **predicted("copy", "fwd", dict(zip("NCHW", shape)), torch.float32))
    return row


def run_case(stage: Stage, fns: dict[str, Any], op: str, pass_: str, layout: str, dtype: torch.dtype,
             shape: tuple[int, ...], copy_gbps: float | None) -> dict[str, Any]:
    x = torch.randn(shape, device=stage.device, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    row: dict[str, Any] = {"op": op, "pass": pass_, "layout": layout, "dtype": DTYPE_NAMES[dtype],
                           "shape": list(shape)}
    if pass_ == "fwd":  # the numbers below are worth nothing if the fused op is wrong
        with torch.no_grad():
            row["fused_equals_reference"] = bool(torch.equal(fns[op]["fused"](x), fns[op]["reference"](x)))
        if not row["fused_equals_reference"]:
            stage.fail(f"{op} {layout} {row['dtype']}: fused forward differs from the reference")
    variants = time_group(stage, {name: (lambda fn=fn: _step(fn, x, pass_)) for name, fn in fns[op].items()})
    row["variants"] = variants
    fused = variants.get("fused", {}).get("median_us")
    if fused:
        rect = paper_rect(shape[2], shape[3])
        pred = predicted(op, pass_, {**dict(zip("NCHW", shape)), "drop_rows": rect[2] / shape[2]}, dtype)
        row.update(pred)
        row.update(rate_row(fused, nominal_bytes(op, pass_, shape, dtype), copy_gbps, pred["floor_us"]))
        row.update(over_fused(variants, fused, ("reference", "compiled")))
    return row


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The kernels.md CUDA targets against the measured rows (fp32 and the AMP dtypes alike)."""
    out = []
    for r in rows:
        label = f"{r['op']} {r['pass']} {r['layout']} {r['dtype']}"
        out += speedup_targets(label, r, TARGET_VS_REFERENCE[r["op"]] if r["pass"] == "fwd+bwd" else None)
        if r["pass"] == "fwd+bwd" and r["op"] == "drop_pool_max" and r.get("pct_of_floor") is not None:
            out.append({"target": f"{label}: >= {TARGET_PCT_OF_FLOOR}% of the HBM floor", "value": r["pct_of_floor"],
                        "met": r["pct_of_floor"] >= TARGET_PCT_OF_FLOOR})
    return out


def body(stage: Stage) -> None:
    shape = REHEARSAL_SHAPE if stage.rehearse else PAPER_SHAPE
    ops = load_ops(stage)
    have_model, why = model_available()
    if not have_model:
        stage.note(why)
    if stage.rehearse:
        stage.note(f"rehearsal: shape {shape}, emulated kernels, torch.compile backend aot_eager, host-clock timing")
    stage.results.update(shape=list(shape), rect=paper_rect(shape[2], shape[3]), cases=[], skipped=[])
    stage.results["copy"] = copy_baseline(stage, shape)
    copy_gbps = stage.results["copy"]["gbps"]
    stage.headline = f"D2D copy {copy_gbps} GB/s"
    stage.checkpoint()
    fns = _forward_fns(stage, ops, paper_rect(shape[2], shape[3]))
    cases = ((f"{op} {pass_} {layout} {DTYPE_NAMES[dtype]}",
              partial(run_case, stage, fns, op, pass_, layout, dtype, shape, copy_gbps))
             for dtype in DTYPES for layout in LAYOUTS for op in OPS for pass_ in PASSES)
    rows = measure_cases(stage, cases, targets)
    head = next((r for r in rows if r["op"] == "drop_pool_max" and r["pass"] == "fwd+bwd"), None)
    if head and head["variants"].get("fused", {}).get("median_us"):
        stage.headline = (f"copy {copy_gbps} GB/s; drop_pool fwd+bwd {head['layout']} {head['dtype']}: "
                          f"{head['variants']['fused']['median_us']:.1f} us, {head['gbps']} GB/s "
                          f"({head['pct_of_copy_bw']}% of copy), {head.get('reference_over_fused')}x reference, "
                          f"{head.get('compiled_over_fused')}x compiled")


if __name__ == "__main__":
    sys.exit(run_stage("bench_ops", body))
