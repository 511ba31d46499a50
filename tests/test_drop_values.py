"""batch_drop_block and drop_pool equal the reference code's eager ops, on every backend."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bdb_ext
from bdb_ext import reference
from drop_cases import AVG_TOLERANCE, DTYPES, LAYOUTS, feature_map

# Shapes that hit every boundary of the kernels: partial blocks and lane groups (H*W not a multiple
# of the group), vector tails (W or C not a multiple of 4/8), a single row or column, empty batches.
EDGE_SHAPES = [(2, 3, 24, 8), (1, 1, 1, 1), (3, 5, 1, 7), (2, 4, 7, 1), (0, 3, 4, 4), (2, 0, 4, 4), (3, 33, 5, 3), (2, 16, 6, 8)]


def edge_rects(h: int, w: int) -> list[list[int]]:
    """Empty rectangles, the whole map, and a rectangle at each border."""
    rects = [[0, 0, 0, 0], [0, 0, h, 0], [0, 0, 0, w], [0, 0, h, w]]
    rh, rw = max(1, h // 3), max(1, w // 2)
    rects += [[0, 0, rh, w], [h - rh, 0, rh, w], [0, 0, h, rw], [0, w - rw, h, rw], [h - rh, w - rw, rh, rw]]
    return rects


def check_pool(x, rect, mode, out, argmax):
    expected = reference.drop_pool(x.double(), rect, mode).to(x.dtype)
    if mode == "max":
        torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)
        # The argmax indexes a kept position holding the max, or is -1 when a dropped 0 won.
        top, left, rh, rw = rect
        flat = x.flatten(2)
        for (n, c), idx in zip(torch.cartesian_prod(*map(torch.arange, out.shape)).tolist() if out.numel() else [], argmax.flatten().tolist()):
            if idx >= 0:
                h, w = divmod(idx, x.shape[3])
                assert not (top <= h < top + rh and left <= w < left + rw)
                assert flat[n, c, idx] == out[n, c] or torch.isnan(out[n, c])
            else:
                assert out[n, c] == 0
    else:
        torch.testing.assert_close(out, expected, **AVG_TOLERANCE[x.dtype])


@pytest.mark.parametrize("shape", EDGE_SHAPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_edge_cases_match_reference(backend, shape, layout):
    x = feature_map(shape, device=backend.device, layout=layout)
    for rect in edge_rects(shape[2], shape[3]):
        y = backend.ops.batch_drop_block(x, rect)
        torch.testing.assert_close(y, reference.batch_drop_block(x, rect), rtol=0, atol=0)
        for mode in ("max", "avg"):
            out, argmax = backend.ops.drop_pool(x, rect, mode)
            assert out.shape == shape[:2] and out.dtype == x.dtype and out.device == x.device
            check_pool(x.cpu(), rect, mode, out.cpu(), argmax.cpu())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_every_dtype(backend, dtype, layout):
    x = feature_map((3, 20, 24, 8), dtype, backend.device, layout, seed=1)
    rect = [5, 0, 8, 8]
    torch.testing.assert_close(backend.ops.batch_drop_block(x, rect), reference.batch_drop_block(x, rect), rtol=0, atol=0)
    for mode in ("max", "avg"):
        out, argmax = backend.ops.drop_pool(x, rect, mode)
        check_pool(x.cpu(), rect, mode, out.cpu(), argmax.cpu())


def test_output_layout_follows_input(backend):
    x = feature_map((2, 8, 6, 4), device=backend.device, layout="channels_last")
    assert backend.ops.batch_drop_block(x, [1, 1, 2, 2]).is_contiguous(memory_format=torch.channels_last)
    x = feature_map((2, 8, 6, 4), device=backend.device, layout="strided")
    assert backend.ops.batch_drop_block(x, [1, 1, 2, 2]).is_contiguous()


def test_device_rect_is_read_where_it_lives(backend):
    x = feature_map((2, 6, 9, 5), device=backend.device)
    rect = torch.tensor([2, 1, 4, 3], device=backend.device)
    torch.testing.assert_close(backend.ops.batch_drop_block(x, rect), reference.batch_drop_block(x, rect), rtol=0, atol=0)
    out, _ = backend.ops.drop_pool(x, rect, "max")
    torch.testing.assert_close(out, reference.drop_pool(x, rect, "max"), rtol=0, atol=0)


@st.composite
def map_and_rect(draw):
    n, c = draw(st.integers(0, 3)), draw(st.integers(0, 9))
    h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    rows, cols = draw(st.integers(0, h)), draw(st.integers(0, w))
    rect = [draw(st.integers(0, h - rows)), draw(st.integers(0, w - cols)), rows, cols]
    layout = draw(st.sampled_from(LAYOUTS))
    return (n, c, h, w), rect, layout, draw(st.integers(0, 2**16))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=map_and_rect())
def test_random_shapes_match_reference(backend, case):
    shape, rect, layout, seed = case
    x = feature_map(shape, device=backend.device, layout=layout, seed=seed)
    torch.testing.assert_close(backend.ops.batch_drop_block(x, rect), reference.batch_drop_block(x, rect), rtol=0, atol=0)
    for mode in ("max", "avg"):
        out, argmax = backend.ops.drop_pool(x, rect, mode)
        check_pool(x.cpu(), rect, mode, out.cpu(), argmax.cpu())


class TestMaxSemantics:
    """The tie, NaN and dropped-zero rules of kernels.md, spelled out on hand-made maps."""

    def pool(self, backend, plane, rect):
        x = torch.tensor(plane, dtype=torch.float32, device=backend.device)[None, None]
        out, argmax = backend.ops.drop_pool(x, rect, "max")
        return out.item(), argmax.item()

    def test_dropped_zero_wins_over_negative_kept_values(self, backend):
        assert self.pool(backend, [[-1.0, -2.0], [5.0, 6.0]], [1, 0, 1, 2]) == (0.0, -1)

    def test_kept_zero_beats_dropped_zero(self, backend):
        assert self.pool(backend, [[0.0, 0.0], [-3.0, 0.0]], [0, 0, 1, 1]) == (0.0, 1)

    def test_ties_go_to_first_kept_position(self, backend):
        assert self.pool(backend, [[1.0, 4.0, 4.0], [4.0, 2.0, 4.0]], [0, 1, 1, 1]) == (4.0, 2)

    def test_nan_propagates_from_first_nan(self, backend):
        nan = float("nan")
        value, idx = self.pool(backend, [[1.0, nan], [nan, 9.0]], [1, 1, 1, 1])
        assert value != value and idx == 1

    def test_nan_inside_rectangle_is_dropped(self, backend):
        assert self.pool(backend, [[1.0, float("nan")], [3.0, 2.0]], [0, 1, 1, 1]) == (3.0, 2)

    def test_whole_map_dropped(self, backend):
        assert self.pool(backend, [[7.0, 8.0]], [0, 0, 1, 2]) == (0.0, -1)

    def test_all_minus_inf_kept_without_drop(self, backend):
        inf = float("inf")
        assert self.pool(backend, [[-inf, -inf]], [0, 0, 0, 0]) == (-inf, 0)


def expected_max_pool(x: torch.Tensor, rect: list[int]) -> tuple[list[float], list[int]]:
    """drop_pool "max" by its rules, one plane at a time in Python: the first kept row-major position
    attaining the max (strict >), the first NaN over anything, dropped zeros winning only over
    all-negative kept values (argmax -1)."""
    n, c, h, w = x.shape
    top, left, rh, rw = rect
    keep = torch.ones(h, w, dtype=torch.bool)
    keep[top : top + rh, left : left + rw] = False
    kept = keep.flatten().nonzero().flatten().tolist()
    any_dropped = rh > 0 and rw > 0
    flat = x.double().flatten(2)
    values, indices = [], []
    for i in range(n):
        for j in range(c):
            best, at = float("-inf"), -1
            for q, v in zip(kept, flat[i, j, kept].tolist()):
                if at < 0 or (math.isnan(v) and not math.isnan(best)) or (not math.isnan(best) and v > best):
                    best, at = v, q
            if any_dropped and (at < 0 or (not math.isnan(best) and best < 0)):
                best, at = 0.0, -1
            values.append(best)
            indices.append(at)
    return values, indices


def planted_maps(shape, dtype) -> torch.Tensor:
    """A map whose channels each plant one case of the max rules where the vectorised CPU kernels
    split their work: ties across vector lanes and accumulators, NaN (one, two, after an inf),
    +inf with -inf (the NaN probe's false alarm), all -inf, all negative, -0.0 before 0.0, the max
    in the last kept position or in the tail past the last whole 16-position chunk."""
    n, c, h, w = shape
    hw = h * w
    g = torch.Generator().manual_seed(3)
    # Small integers (and halves) are exact in fp16 and bf16, so every dtype sees the same ties.
    x = torch.randint(-40, 40, (n, c, hw), generator=g).double() / 2
    inf, nan = float("inf"), float("nan")
    for j in range(c):
        case = j % 12
        plane = x[:, j]
        if case == 1:
            plane[:] = 1.0
        elif case == 2:
            plane[:, hw // 2] = nan
            plane[:, hw - 1] = nan
        elif case == 3:
            plane[:] = -inf
        elif case == 4:
            plane[:, 3] = -inf
            plane[:, hw - 2] = inf
        elif case == 5:
            plane[:] = -plane.abs() - 1
        elif case == 6:
            plane[:] = -plane.abs() - 1
            plane[:, 9 % hw] = -0.0
            plane[:, hw - 3] = 0.0
        elif case == 7:
            plane[:, 9 % hw] = 50.0  # lane 1 of the second vector (one accumulator) ...
            plane[:, 17 % hw] = 50.0  # ... and lane 1 of the third (the other): the first must win
        elif case == 8:
            plane[:, hw - 1] = 60.0
        elif case == 9:
            plane[:, 2] = inf
            plane[:, 5] = nan
        elif case == 10:
            plane[:] = -inf
            plane[:, hw - 1] = -3.0
    return x.view(shape).to(dtype)


@pytest.mark.parametrize("shape", [(2, 77, 6, 8), (2, 70, 5, 7), (1, 530, 4, 6)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_max_rules_on_vector_paths(backend, shape, dtype, layout):
    """Every tie/NaN/inf rule on maps large enough for the vector code paths (whole 16-position
    chunks, mixed chunks, tails; 4-position groups and channel blocks in channels_last)."""
    x = planted_maps(shape, dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    h, w = shape[2], shape[3]
    for rect in ([0, 0, 0, 0], [1, 0, 2, w], [1, 2, 3, 3], [0, 0, h, w], [0, 1, h, 1]):
        out, argmax = backend.ops.drop_pool(x.to(backend.device), rect, "max")
        values, indices = expected_max_pool(x, rect)
        assert argmax.flatten().tolist() == indices, rect
        got = out.double().flatten().tolist()
        assert all((a == b) or (math.isnan(a) and math.isnan(b)) for a, b in zip(got, values)), rect


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit, NaN payloads and the sign of zero included."""
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(bits), b.view(bits))


@pytest.mark.parametrize("shape", [(2, 77, 6, 8), (2, 70, 5, 7), (1, 530, 4, 6), (2, 9, 24, 8), (3, 5, 3, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_values_only_call_returns_the_arg_max_calls_bits(backend, shape, dtype, layout):
    """return_argmax=False runs a pass that tracks no positions (CPU NCHW: its own kernel); its values
    must be the arg-max call's bit for bit: the first NaN's payload, the first of +0.0 and -0.0, an
    all -inf plane, dropped zeros. The raw op then returns an empty (0, 0) argmax."""
    x = planted_maps(shape, dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.to(backend.device)
    h, w = shape[2], shape[3]
    for rect in ([0, 0, 0, 0], [1, 0, 2, w], [1, 2, 2, 1], [0, 0, h, w], [0, 1, h, 1], [h // 3, 0, h // 3, w]):
        full, _ = backend.ops.drop_pool(x, rect, "max")
        values = backend.ops.drop_pool(x, rect, "max", return_argmax=False)
        assert isinstance(values, torch.Tensor) and same_bits(values, full), rect
        raw_values, raw_argmax = backend.raw_ops.drop_pool(x, torch.tensor(rect, device=backend.device), "max", False)
        assert same_bits(raw_values, full) and raw_argmax.shape == (0, 0) and raw_argmax.dtype == torch.int64
        avg = backend.ops.drop_pool(x, rect, "avg", return_argmax=False)
        assert same_bits(avg, backend.ops.drop_pool(x, rect, "avg")[0]), rect


def test_values_only_random_maps_match_the_arg_max_call():
    """The CPU values-only kernel on random shapes, rectangles, special values and thread counts."""
    g = torch.Generator().manual_seed(7)
    before = torch.get_num_threads()
    try:
        for case in range(150):
            n, c, h, w = (int(torch.randint(1, hi, (1,), generator=g)) for hi in (4, 20, 13, 13))
            dtype = DTYPES[case % len(DTYPES)]
            x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
            special = torch.rand(x.shape, generator=g)
            if case % 3 == 0:
                x = -x.abs() * (case % 2)  # all-negative kept values, -0.0 and +0.0 zeros
            x[special < 0.05] = float("nan") if case % 4 == 1 else float("-inf")
            x[special > 0.97] = 0.0 if case % 2 else -0.0
            x = x.to(dtype)
            top, left = int(torch.randint(0, h + 1, (1,), generator=g)), int(torch.randint(0, w + 1, (1,), generator=g))
            rect = [top, left, int(torch.randint(0, h - top + 1, (1,), generator=g)),
                    int(torch.randint(0, w - left + 1, (1,), generator=g))]
            torch.set_num_threads(1 + case % 3)
            full, _ = bdb_ext.ops.drop_pool(x, rect, "max")
            assert same_bits(bdb_ext.ops.drop_pool(x, rect, "max", return_argmax=False), full), (x.shape, dtype, rect)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 3])
def test_max_rules_hold_at_any_thread_count(threads):
    """The CPU max settles NCHW planes in groups of one vector width, each group's lanes transposed
    together; a thread's share of planes starts a group wherever it begins and may end in a short one.
    Every rule must hold whatever the split (154 planes: not a multiple of any vector width)."""
    x = planted_maps((2, 77, 24, 8), torch.float32)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for rect in ([0, 0, 0, 0], [8, 0, 8, 8], [3, 2, 5, 3]):
            out, argmax = bdb_ext.ops.drop_pool(x, rect, "max")
            values, indices = expected_max_pool(x, rect)
            assert argmax.flatten().tolist() == indices, rect
            got = out.double().flatten().tolist()
            assert all((a == b) or (math.isnan(a) and math.isnan(b)) for a, b in zip(got, values)), rect
    finally:
        torch.set_num_threads(before)


def test_pooling_bits_do_not_depend_on_the_instruction_set(tmp_path):
    """avg sums in 16 fixed lanes (and max is exact), so the AVX2 and the baseline (SSE2) kernels
    return the same bits: seeded training does not take another path on another CPU."""
    g = torch.Generator().manual_seed(0)
    maps = {
        "nchw": torch.randn(3, 40, 7, 9, generator=g),
        "cl": torch.randn(3, 40, 7, 9, generator=g).contiguous(memory_format=torch.channels_last),
        "bf16": torch.randn(3, 40, 6, 8, generator=g).bfloat16(),
    }
    torch.save(maps, tmp_path / "maps.pt")
    script = (
        "import sys, torch, bdb_ext\n"
        "maps = torch.load(sys.argv[1])\n"
        "out = {k: [t for mode in ('avg', 'max') for t in bdb_ext.ops.drop_pool(x, [2, 1, 3, 4], mode)] for k, x in maps.items()}\n"
        "torch.save(out, sys.argv[2])\n"
    )
    results = {}
    for capability in ("default", "avx2"):
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
        path = tmp_path / f"{capability}.pt"
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "maps.pt"), str(path)], env=env, check=True)
        results[capability] = torch.load(path)
    for key in maps:
        for a, b in zip(results["default"][key], results["avx2"][key]):
            assert torch.equal(a, b), key
