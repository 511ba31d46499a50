"""batch_drop_block and drop_pool equal the reference code's eager ops, on every backend."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
