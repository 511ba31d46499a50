"""Standalone driver for compute-sanitizer: calls every bdb_ext op, forward and backward, across
dtypes, layouts and vector widths, and checks each result against bdb_ext.reference.

Not pytest: the sanitizer then sees one short process doing only this. Covered:

- batch_drop_block and drop_pool (max and avg): float32/float64/float16/bfloat16; NCHW,
  channels_last, a strided view, NCHW and channels_last starting 1 element past an aligned buffer,
  NCHW 2 elements past (fp16/bf16: 4-byte but not 16-byte alignment); inner sizes giving every
  vector width (W or C = 8, 6, 9); maps whose plane or channel count is not a multiple of a warp or
  a block (partial tiles and warps); empty, full, interior, device-resident and out-of-range
  device-resident rectangles (clamped on a GPU; on a CPU rect the op must refuse it).
- pairwise_distance (self and x-vs-y, squared or not, misaligned rows), batch_hard_mine (P x K,
  ragged identities, one identity, all distinct), batch_hard_triplet_loss fwd+bwd.

Usage: python sanitizer_driver.py [--library real|emulated] [--json PATH] [--control]
Exit status 0 when every case matches; 1 otherwise (each mismatch is listed).

``--control`` runs only a positive control instead: batch_drop_block on a fresh, never-written
allocation, which compute-sanitizer initcheck must report. The sanitizer stage uses it to prove
that its kernel-name filter selects the bdb kernels (a filter that matched nothing would pass
every tool vacuously).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from drop_cases import AVG_TOLERANCE, feature_map  # noqa: E402 - the test suite's input builders
from mining_cases import TOLERANCES, assert_mine_matches, pk_labels, ragged_labels  # noqa: E402

from bdb_ext import reference  # noqa: E402

__all__ = ["clamp_rect", "run_all"]

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
# (N, C, H, W): W = 9 and C = 5 (vector width 1, planes of 63: partial warps); W = 8, C = 16 (the
# widest vectors both ways); W = 6, C = 6 (width 2); the paper's 24 x 8 with C = 40 (not a
# multiple of a warp or a channel tile). Small enough for the emulator in the CPU rehearsal.
DROP_SHAPES = ((3, 5, 7, 9), (2, 16, 6, 8), (1, 6, 4, 6), (2, 40, 24, 8))
# Mining tiles are 32 x 32 pairs (cuda/mining_launch.cuh): one partial tile, several with a partial last one.
PAIRWISE_SHAPES = ((1, 1, 1), (33, 5, 7), (70, 64, 129))
MINE_SHAPES = ((1, 3), (2, 64), (37, 130), (72, 33))
DROP_LAYOUTS = ("contiguous", "channels_last", "strided", "misaligned", "misaligned2", "channels_last_misaligned")


def clamp_rect(rect: list[int], h: int, w: int) -> list[int]:
    """What the kernels do with a device-resident rect (csrc/common/drop_rect.h load_rect)."""
    top = min(max(rect[0], 0), h)
    left = min(max(rect[1], 0), w)
    return [top, left, min(max(rect[2], 0), h - top), min(max(rect[3], 0), w - left)]


def offset_map(shape: tuple[int, ...], dtype: torch.dtype, device: str, layout: str, seed: int) -> torch.Tensor:
    """The layouts feature_map lacks: 2 elements past alignment, and channels_last 1 element past."""
    x = feature_map(shape, dtype, device, "contiguous", seed)
    n, c, h, w = shape
    if layout == "misaligned2":
        buf = torch.empty(x.numel() + 2, dtype=dtype, device=device)
        buf[2:] = x.reshape(-1)
        return buf[2:].view(shape)
    buf = torch.empty(x.numel() + 1, dtype=dtype, device=device)
    buf[1:] = x.permute(0, 2, 3, 1).reshape(-1)
    out = buf[1:].view(n, h, w, c).permute(0, 3, 1, 2)
    assert out.is_contiguous(memory_format=torch.channels_last)
    return out


def make_map(shape: tuple[int, ...], dtype: torch.dtype, device: str, layout: str, seed: int) -> torch.Tensor:
    if layout in ("misaligned2", "channels_last_misaligned"):
        return offset_map(shape, dtype, device, layout, seed)
    return feature_map(shape, dtype, device, layout, seed)


def _mask(x: torch.Tensor, rect: list[int]) -> torch.Tensor:
    top, left, rh, rw = rect
    keep = torch.ones(x.shape[2], x.shape[3], dtype=torch.bool, device=x.device)
    keep[top:top + rh, left:left + rw] = False
    return keep


def expected_argmax(x: torch.Tensor, rect: list[int], out: torch.Tensor) -> torch.Tensor:
    """The contract's argmax: the first kept position (row-major) holding the max, else -1."""
    keep = _mask(x, rect).flatten()
    flat = x.flatten(2)
    hits = (flat == out.unsqueeze(-1)) & keep
    first = hits.to(torch.uint8).argmax(-1)
    return torch.where(hits.any(-1), first, torch.full_like(first, -1))


def check_drop_case(ops: Any, x: torch.Tensor, rect_arg: Any, rect: list[int]) -> None:
    """batch_drop_block and drop_pool(max, avg), forward and backward, against the reference."""
    torch.testing.assert_close(ops.batch_drop_block(x, rect_arg), reference.batch_drop_block(x, rect), rtol=0, atol=0)
    xg = x.detach().clone().requires_grad_(True)
    y = ops.batch_drop_block(xg, rect_arg)
    g = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, xg, g)
    torch.testing.assert_close(dx, reference.batch_drop_block(g, rect), rtol=0, atol=0)

    out, argmax = ops.drop_pool(xg, rect_arg, "max")
    torch.testing.assert_close(out, reference.drop_pool(x, rect, "max"), rtol=0, atol=0)
    want = expected_argmax(x, rect, out)
    assert torch.equal(argmax, want), f"argmax differs at {int((argmax != want).sum())} of {argmax.numel()} positions"
    go = torch.randn_like(out)
    (dx,) = torch.autograd.grad(out, xg, go)
    dx_want = torch.zeros_like(x).flatten(2)
    dx_want.scatter_(2, want.clamp(min=0).unsqueeze(-1), (go * (want >= 0)).unsqueeze(-1))
    torch.testing.assert_close(dx.flatten(2), dx_want, rtol=0, atol=0)

    out, _ = ops.drop_pool(xg, rect_arg, "avg")
    torch.testing.assert_close(out, reference.drop_pool(x.double(), rect, "avg").to(x.dtype), **AVG_TOLERANCE[x.dtype])
    (dx,) = torch.autograd.grad(out, xg, go)
    h, w = x.shape[2], x.shape[3]
    dx_want = (go.double()[:, :, None, None] / (h * w) * _mask(x, rect)).to(x.dtype).expand_as(x)
    torch.testing.assert_close(dx, dx_want, **AVG_TOLERANCE[x.dtype])


def drop_cases(device: str) -> Iterator[tuple[str, Callable[[Any], None]]]:
    for dtype in DTYPES:
        for layout in DROP_LAYOUTS:
            for shape in DROP_SHAPES:
                n, c, h, w = shape
                x = make_map(shape, dtype, device, layout, seed=n * c + h * w)
                rects = [[h // 3, 0, max(1, round(0.33 * h)), w]]
                if dtype == torch.float32 and layout in ("contiguous", "channels_last"):
                    rects += [[0, 0, 0, 0], [0, 0, h, w], [1, 1, h - 2, w - 2]]
                name = f"drop {str(dtype)[6:]} {layout} {shape}"
                for rect in rects:
                    yield f"{name} rect {rect}", lambda ops, x=x, rect=rect: check_drop_case(ops, x, rect, rect)
                device_rect = torch.tensor(rects[0], device=device)
                yield f"{name} device rect", lambda ops, x=x, r=device_rect: check_drop_case(ops, x, r, r.tolist())
                if dtype == torch.float32 and layout == "contiguous":
                    yield f"{name} out-of-range device rect", lambda ops, x=x: out_of_range_rect(ops, x)


def out_of_range_rect(ops: Any, x: torch.Tensor) -> None:
    """A device rect past every edge is clamped by the kernel; a CPU one is refused by the host."""
    h, w = x.shape[2], x.shape[3]
    raw = [-2, w - 1, h + 5, 7]
    rect_t = torch.tensor(raw, device=x.device)
    if x.device.type == "cpu":  # the emulated library's "device" is the CPU: the host checks it
        try:
            ops.batch_drop_block(x, rect_t)
        except RuntimeError as error:
            assert "must lie inside" in str(error), f"unexpected error: {error}"
            return
        raise AssertionError("an out-of-range CPU rect was accepted")
    check_drop_case(ops, x, rect_t, clamp_rect(raw, h, w))


def check_mine(ops: Any, x: torch.Tensor, labels: torch.Tensor) -> None:
    rtol, atol = TOLERANCES[x.dtype]
    assert_mine_matches(ops.batch_hard_mine(x, labels), x, labels, rtol, atol)
    xg = x.detach().clone().requires_grad_(True)
    loss = ops.batch_hard_triplet_loss(xg, labels)
    (dx,) = torch.autograd.grad(loss, xg)
    x64 = x.detach().double().requires_grad_(True)
    ref = reference.batch_hard_triplet_loss(x64, labels)
    (dx64,) = torch.autograd.grad(ref, x64)
    torch.testing.assert_close(loss.double(), ref, rtol=max(rtol, 1e-5), atol=max(atol, 1e-6))
    assert torch.isfinite(dx).all(), "non-finite loss gradient"
    if x.dtype in (torch.float32, torch.float64):  # half-precision picks can flip on near-ties
        torch.testing.assert_close(dx.double(), dx64, rtol=1e-4, atol=1e-5)


def check_pairwise(ops: Any, x: torch.Tensor, y: torch.Tensor | None, squared: bool) -> None:
    rtol, atol = TOLERANCES[x.dtype]
    other = x if y is None else y
    d = ops.pairwise_distance(x, y, squared)
    want = reference.pairwise_distance(x.double(), other.double(), squared)
    torch.testing.assert_close(d.double(), want, rtol=rtol, atol=atol * max(1.0, float(want.abs().max())))
    xg = x.detach().clone().requires_grad_(True)
    yg = None if y is None else y.detach().clone().requires_grad_(True)
    grads = torch.autograd.grad(ops.pairwise_distance(xg, yg, squared).sum(), [xg] + ([yg] if yg is not None else []))
    assert all(torch.isfinite(gr).all() for gr in grads), "non-finite pairwise_distance gradient"
    if y is not None and x.dtype in (torch.float32, torch.float64):
        x64 = x.detach().double().requires_grad_(True)
        y64 = y.detach().double().requires_grad_(True)
        want_grads = torch.autograd.grad(reference.pairwise_distance(x64, y64, squared).sum(), [x64, y64])
        for gr, wg in zip(grads, want_grads):
            torch.testing.assert_close(gr.double(), wg, rtol=1e-4, atol=1e-5)


def _rows(n: int, d: int, dtype: torch.dtype, device: str, seed: int, misaligned: bool = False) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(device=device, dtype=dtype)
    if not misaligned:
        return x
    buf = torch.empty(n * d + 1, dtype=dtype, device=device)
    buf[1:] = x.reshape(-1)
    return buf[1:].view(n, d)


def mining_cases(device: str) -> Iterator[tuple[str, Callable[[Any], None]]]:
    for dtype in DTYPES:
        tag = str(dtype)[6:]
        for n, m, d in PAIRWISE_SHAPES:
            for misaligned in (False, True):
                x = _rows(n, d, dtype, device, seed=n + d, misaligned=misaligned)
                y = _rows(m, d, dtype, device, seed=m * d)
                for squared in (False, True):
                    name = f"pairwise {tag} N={n} M={m} D={d} squared={squared} misaligned={misaligned}"
                    yield f"{name} self", lambda ops, x=x, s=squared: check_pairwise(ops, x, None, s)
                    yield f"{name} x-vs-y", lambda ops, x=x, y=y, s=squared: check_pairwise(ops, x, y, s)
        for n, d in MINE_SHAPES:
            x = _rows(n, d, dtype, device, seed=3 * n + d)
            label_sets = {"ragged": ragged_labels(n, seed=n, device=device),
                          "one identity": torch.zeros(n, dtype=torch.int64, device=device),
                          "all distinct": torch.arange(n, device=device)}
            if n % 4 == 0:
                label_sets["PxK"] = pk_labels(n // 4, 4, device=device)
            for label_name, labels in label_sets.items():
                yield f"mine {tag} N={n} D={d} {label_name}", lambda ops, x=x, lab=labels: check_mine(ops, x, lab)


def uninitialized_read(ops: Any, device: str) -> dict[str, Any]:
    """A bdb kernel reading memory nobody wrote (the positive control for initcheck)."""
    x = torch.empty((2, 8, 6, 4), device=device)
    ops.batch_drop_block(x, [1, 0, 2, 4])
    if device == "cuda":
        torch.cuda.synchronize()
    return {"cases": 1, "failures": [], "seconds": 0.0, "control": "uninitialized read"}


def run_all(ops: Any, device: str) -> dict[str, Any]:
    """Every case; a failing case is recorded and the rest still run."""
    t0 = time.monotonic()
    failures: list[str] = []
    count = 0
    for cases in (drop_cases(device), mining_cases(device)):
        for name, check in cases:
            count += 1
            try:
                check(ops)
            except Exception as error:  # noqa: BLE001 - every mismatch is reported, not just the first
                failures.append(f"{name}: {type(error).__name__}: {str(error)[:400]}")
                traceback.print_exc()
    if device == "cuda":
        torch.cuda.synchronize()
    return {"cases": count, "failures": failures, "seconds": round(time.monotonic() - t0, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", choices=("real", "emulated"),
                        default="real" if torch.cuda.is_available() else "emulated")
    parser.add_argument("--json", type=Path, default=None, help="write {cases, failures, seconds} here")
    parser.add_argument("--control", action="store_true", help="only the uninitialized-read positive control")
    args = parser.parse_args()
    if args.library == "real":
        import bdb_ext

        ops, device = bdb_ext.ops, "cuda"
    else:
        from emulated_library import load_emulated_library

        ops, device = load_emulated_library(), "cpu"
    result = uninitialized_read(ops, device) if args.control else run_all(ops, device)
    result.update(library=args.library, device=device)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"sanitizer_driver: {result['cases']} cases, {len(result['failures'])} failed, {result['seconds']} s")
    for failure in result["failures"]:
        print(f"  FAIL {failure}")
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
