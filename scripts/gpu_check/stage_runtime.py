"""Stage runtime: what only a running GPU shows about the ops in use, beyond their values.

1. sync_debug: a BDB training step (BDBNet + BDBLoss forward and backward, Adam step; ResNet-50,
   384 x 128, batch 32, bf16 autocast, channels_last) under torch.cuda.set_sync_debug_mode("error"):
   any host sync raises (kernels.md: 0 host syncs in a training step).
2. cuda_graph: every fused op (batch_drop_block, drop_pool max and avg, pairwise_distance,
   batch_hard_triplet_loss), forward and backward, captured in one CUDA graph; after new inputs
   (and a new device rect) are copied in, the replay must equal eager bitwise.
3. determinism: the same fused forward + backward twice at the paper's shape (and mining at N=512,
   D=2048) must agree bitwise.
4. large: an fp16 batch_drop_block and a drop_pool (forward and backward) over more than 2^31
   elements, checked on sampled positions (at, around and past element 2^31) against the reference.

Rehearsal: the same code on the CPU (the emulated kernels; the training step on the CPU kernels in
float32), with no sync-debug mode and no graph (the "replay" re-runs the function), tiny shapes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

from bdb_ext import reference
from common import Stage, load_ops, run_stage
from sanitizer_driver import expected_argmax
from train_step import REHEARSAL, StepShape, build_train_step

SYNC_SHAPE = StepShape("resnet50", 8, 4, 384, 128)
LARGE = 2**31


def check_sync_debug(stage: Stage) -> dict[str, Any]:
    try:
        import torchvision  # noqa: F401 - BDBNet's trunk
    except ImportError as error:
        return {"status": "skipped", "why": f"torchvision not importable ({error})"}
    shape = REHEARSAL if stage.rehearse else SYNC_SHAPE
    amp = None if stage.rehearse else torch.bfloat16
    step = build_train_step(True, shape, stage.device, amp, channels_last=True)
    step()  # warm-up: allocator, cuDNN plans
    step()
    if stage.rehearse:
        step()
        return {"status": "pass", "shape": vars(shape), "why": "rehearsal: no sync-debug mode on the CPU"}
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    except RuntimeError as error:
        return {"status": "fail", "shape": vars(shape), "error": str(error)[:1500]}
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    return {"status": "pass", "shape": vars(shape)}


def fused_pass(ops: Any, x: torch.Tensor, rect: torch.Tensor, feats: torch.Tensor, labels: torch.Tensor,
               w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every fused op forward, one scalar of them all, and its gradients in x and feats."""
    pooled_max, argmax = ops.drop_pool(x, rect, "max")
    pooled_avg, _ = ops.drop_pool(x, rect, "avg")
    dropped = ops.batch_drop_block(x, rect)
    dist = ops.pairwise_distance(feats, None, False)
    triplet = ops.batch_hard_triplet_loss(feats, labels)
    loss = ((pooled_max.float() * w).sum() + (pooled_avg.float() * w).sum() + dropped.float().square().mean()
            + dist.float().mean() + triplet.float())
    dx, dfeats = torch.autograd.grad(loss, [x, feats])
    return pooled_max, argmax, pooled_avg, dropped, dist, loss.detach(), dx, dfeats


def _inputs(stage: Stage, shape: tuple[int, ...], n_feats: int, d: int, dtype: torch.dtype, seed: int):
    g = torch.Generator().manual_seed(seed)
    n, c, h, _ = shape
    x = torch.randn(shape, generator=g).to(stage.device, dtype).contiguous(memory_format=torch.channels_last)
    feats = torch.randn(n_feats, d, generator=g).to(stage.device)
    labels = torch.arange(n_feats // 4).repeat_interleave(4)[torch.randperm(n_feats, generator=g)].to(stage.device)
    top = int(torch.randint(0, h // 2, (1,), generator=g))
    rect = torch.tensor([top, 0, h // 3, shape[3]], device=stage.device)
    w = torch.randn(n, c, generator=g).to(stage.device)
    return x.requires_grad_(True), rect, feats.requires_grad_(True), labels, w


def _first_difference(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> str | None:
    names = ("pooled_max", "argmax", "pooled_avg", "dropped", "distances", "loss", "dx", "dfeats")
    for name, u, v in zip(names, a, b):
        if not torch.equal(u, v):
            return name
    return None


def check_cuda_graph(stage: Stage, ops: Any) -> dict[str, Any]:
    shape, nf, d = ((2, 8, 24, 8), 8, 16) if stage.rehearse else ((32, 2048, 24, 8), 128, 1536)
    static = _inputs(stage, shape, nf, d, torch.bfloat16, seed=1)
    run: Callable[[], tuple[torch.Tensor, ...]] = lambda: fused_pass(ops, *static)
    if stage.rehearse:
        captured = run()
        replay = run
    else:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = run()

        def replay() -> tuple[torch.Tensor, ...]:
            graph.replay()
            return captured
    fresh = _inputs(stage, shape, nf, d, torch.bfloat16, seed=2)
    with torch.no_grad():
        for dst, src in zip(static, fresh):
            dst.copy_(src)
    replayed = tuple(t.clone() for t in replay())
    eager = run()
    diff = _first_difference(replayed, eager)
    return {"status": "fail" if diff else "pass", "shape": list(shape), "feats": [nf, d],
            **({"differs": diff} if diff else {}),
            **({"why": "rehearsal: no CUDA graph on the CPU; the 'replay' re-runs the function"}
               if stage.rehearse else {})}


def check_determinism(stage: Stage, ops: Any) -> dict[str, Any]:
    cases = [((2, 8, 6, 4), 16, 24, torch.float32)] if stage.rehearse else [
        ((128, 2048, 24, 8), 512, 2048, torch.float32), ((128, 2048, 24, 8), 128, 1536, torch.bfloat16)]
    rows = []
    for shape, nf, d, dtype in cases:
        first = fused_pass(ops, *_inputs(stage, shape, nf, d, dtype, seed=3))
        second = fused_pass(ops, *_inputs(stage, shape, nf, d, dtype, seed=3))
        diff = _first_difference(first, second)
        rows.append({"shape": list(shape), "feats": [nf, d], "dtype": str(dtype)[6:], "bitwise_equal": diff is None,
                     **({"differs": diff} if diff else {})})
    return {"status": "pass" if all(r["bitwise_equal"] for r in rows) else "fail", "cases": rows}


def _sample_indices(numel: int, count: int, g: torch.Generator) -> torch.Tensor:
    around = [0, 1, LARGE - 1, LARGE, LARGE + 1, numel - 1]
    picks = torch.tensor([i for i in around if 0 <= i < numel], dtype=torch.int64)
    return torch.cat([picks, torch.randint(0, numel, (count,), generator=g)]).unique()


def check_large_drop(stage: Stage, ops: Any) -> dict[str, Any]:
    """fp16 batch_drop_block over > 2^31 elements (NCHW), sampled against x (kept) or 0 (dropped)."""
    shape = (1, 5, 24, 8) if stage.rehearse else (1, LARGE // (24 * 8) + 1, 24, 8)
    h, w = shape[2], shape[3]
    x = torch.randn(shape, device=stage.device, dtype=torch.float16)
    rect = [8, 0, 8, w]
    y = ops.batch_drop_block(x, torch.tensor(rect, device=stage.device))
    idx = _sample_indices(x.numel(), 256, torch.Generator().manual_seed(4)).to(stage.device)
    row, col = (idx // w) % h, idx % w
    dropped = (row >= rect[0]) & (row < rect[0] + rect[2]) & (col >= rect[1]) & (col < rect[1] + rect[3])
    want = torch.where(dropped, torch.zeros((), dtype=x.dtype, device=x.device), x.reshape(-1)[idx])
    ok = torch.equal(y.reshape(-1)[idx], want)
    return {"status": "pass" if ok else "fail", "shape": list(shape), "numel": x.numel(), "samples": idx.numel()}


def check_large_pool(stage: Stage, ops: Any) -> dict[str, Any]:
    """fp16 drop_pool(max) over > 2^31 elements, forward and backward, on sampled (n, c) planes."""
    shape = (2, 3, 24, 8) if stage.rehearse else (64, LARGE // (64 * 24 * 8) + 1, 24, 8)
    n, c, h, w = shape
    x = torch.randn(shape, device=stage.device, dtype=torch.float16, requires_grad=True)
    rect = [8, 0, 8, w]
    out, argmax = ops.drop_pool(x, torch.tensor(rect, device=stage.device), "max")
    go = torch.randn_like(out)
    (dx,) = torch.autograd.grad(out, x, go)
    planes = _sample_indices(n * c, 128, torch.Generator().manual_seed(5))
    planes = torch.cat([planes, torch.tensor([LARGE // (h * w)])]).unique()
    planes = planes[planes < n * c].to(stage.device)
    xs = x.detach().reshape(n * c, 1, h, w)[planes]
    want_out = reference.drop_pool(xs, rect, "max").flatten()
    got_out = out.reshape(-1)[planes]
    want_arg = expected_argmax(xs, rect, got_out.view(-1, 1)).flatten()
    got_arg = argmax.reshape(-1)[planes]
    dx_planes = dx.reshape(n * c, h * w)[planes]
    want_dx = torch.zeros_like(dx_planes)
    want_dx.scatter_(1, want_arg.clamp(min=0).unsqueeze(1), (go.reshape(-1)[planes] * (want_arg >= 0)).unsqueeze(1))
    checks = {"values": torch.equal(got_out, want_out), "argmax": torch.equal(got_arg, want_arg),
              "dx": torch.equal(dx_planes, want_dx)}
    return {"status": "pass" if all(checks.values()) else "fail", "shape": list(shape), "numel": x.numel(),
            "planes": planes.numel(), "checks": checks}


def body(stage: Stage) -> None:
    ops = load_ops(stage)
    if stage.rehearse:
        stage.note("rehearsal: tiny shapes on the CPU; sync-debug mode and CUDA graphs need a GPU, "
                   "and the > 2^31-element checks run at a few hundred elements")
    checks = (("sync_debug", lambda: check_sync_debug(stage)), ("cuda_graph", lambda: check_cuda_graph(stage, ops)),
              ("determinism", lambda: check_determinism(stage, ops)),
              ("large_drop", lambda: check_large_drop(stage, ops)), ("large_pool", lambda: check_large_pool(stage, ops)))
    for name, check in checks:
        if stage.out_of_time(reserve_s=5):
            stage.results[name] = {"status": "timeout", "why": "no time left"}
            continue
        print(f"[runtime] {name}", flush=True)
        try:
            stage.results[name] = check()
        except Exception as error:  # noqa: BLE001 - one check's crash is its finding; the others still run
            stage.results[name] = {"status": "fail", "error": f"{type(error).__name__}: {str(error)[:1500]}"}
        if stage.results[name]["status"] == "fail":
            stage.fail(f"{name}: {stage.results[name]}")
        if stage.device == "cuda":
            torch.cuda.empty_cache()
        stage.checkpoint()
    if any(stage.results[name]["status"] == "timeout" for name, _ in checks) and not stage.failures:
        stage.status_override = "timeout"
    stage.headline = "; ".join(f"{name} {stage.results[name]['status']}" for name, _ in checks)


if __name__ == "__main__":
    sys.exit(run_stage("runtime", body))
