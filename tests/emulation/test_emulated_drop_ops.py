"""The CUDA drop kernels (csrc/cuda/drop_cuda.cu + drop_kernels.cuh, unmodified) run by the emulator,
against bdb_ext.reference and the CPU op, on shapes chosen to hit every boundary of the CUDA code:
partial blocks, several blocks, partial lane groups and idle lanes in the plane-pooling shuffles,
threads that return early in channel pooling, every vector width and its scalar tail fallback,
misaligned pointers, both layouts, empty and full rectangles, ties and all-negative maps.

The op-level suite (tests/conftest.py's ``backend`` fixture) runs the general op tests on this
backend too; these tests pin the CUDA-specific boundaries.
"""

from __future__ import annotations

import pytest
import torch

import bdb_ext
from bdb_ext import reference

NCHW = torch.contiguous_format
NHWC = torch.channels_last


def _input(shape, dtype, fmt=NCHW, offset=0, values="random", seed=0):
    """A tensor of ``shape`` in memory format ``fmt``; ``offset`` > 0 starts it that many elements
    into a larger buffer (so the data pointer is aligned to the element size only)."""
    g = torch.Generator().manual_seed(seed)
    numel = 1
    for s in shape:
        numel *= s
    if values == "ties":
        flat = torch.randint(-2, 3, (numel + offset,), generator=g).to(dtype) * 0.5
    elif values == "negative":
        flat = -(torch.rand(numel + offset, generator=g, dtype=torch.float64) + 0.25).to(dtype)
    else:
        flat = torch.randn(numel + offset, generator=g, dtype=torch.float64).to(dtype)
    x = flat[offset:]
    if fmt == NHWC:
        n, c, h, w = shape
        return x.view(n, h, w, c).permute(0, 3, 1, 2)
    return x.view(shape)


# (shape, rect, format, dtype, offset): the vector width the host code picks is noted for each.
DROP_CASES = [
    ((2, 3, 5, 7), [1, 2, 3, 4], NCHW, torch.float32, 0),  # W odd: scalar, one partial block
    ((2, 37, 5, 7), [0, 0, 5, 3], NCHW, torch.float32, 0),  # 2590 elements: 11 blocks, last partial
    ((3, 5, 6, 8), [2, 1, 2, 6], NCHW, torch.float32, 0),  # W % 4 == 0: float4
    ((3, 5, 6, 8), [2, 1, 2, 6], NCHW, torch.float32, 1),  # misaligned by 4 bytes: scalar
    ((3, 5, 6, 8), [2, 1, 2, 6], NCHW, torch.float32, 2),  # aligned to 8 bytes: float2
    ((2, 8, 3, 4), [1, 1, 1, 2], NHWC, torch.float32, 0),  # channels_last, C % 4 == 0
    ((2, 5, 3, 4), [0, 1, 3, 2], NHWC, torch.float32, 0),  # channels_last, C odd
    ((2, 4, 3, 16), [0, 3, 2, 9], NCHW, torch.float16, 0),  # half x 8
    ((2, 4, 3, 12), [1, 0, 1, 12], NCHW, torch.float16, 0),  # W % 8 == 4: half x 4
    ((2, 16, 3, 2), [1, 0, 2, 1], NHWC, torch.bfloat16, 0),  # bf16 x 8 over channels
    ((2, 3, 4, 6), [0, 0, 4, 6], NCHW, torch.float64, 0),  # double x 2, full rectangle
    ((2, 3, 4, 6), [2, 2, 0, 3], NCHW, torch.float64, 0),  # empty rectangle
]


def _id(case):
    shape, rect, fmt, dtype, offset = case
    layout = "nhwc" if fmt == NHWC else "nchw"
    return f"{'x'.join(map(str, shape))}-{layout}-{str(dtype)[6:]}-off{offset}-r{'_'.join(map(str, rect))}"


@pytest.mark.parametrize("case", DROP_CASES, ids=_id)
def test_batch_drop_block_matches_reference(emulated_ops, case):
    shape, rect, fmt, dtype, offset = case
    x = _input(shape, dtype, fmt, offset)
    y = emulated_ops.batch_drop_block(x, rect)
    assert torch.equal(y, reference.batch_drop_block(x, rect))
    assert y.is_contiguous(memory_format=fmt)


def test_batch_drop_block_non_dense_input_is_read_through_its_strides(emulated_ops):
    x = _input((3, 4, 6, 5), torch.float32).transpose(2, 3)  # neither NCHW nor channels_last
    y = emulated_ops.batch_drop_block(x, [1, 1, 2, 3])
    assert torch.equal(y, reference.batch_drop_block(x, [1, 1, 2, 3]))
    assert y.is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_batch_drop_block_backward_reads_an_expanded_gradient_in_place(emulated_ops, dtype):
    """The gradient of y.sum() is a stride-0 expand: one strided kernel reads it, no dense copy."""
    emu = torch.ops.bdb_ext_emu
    g = torch.randn(1, 1, 1, 8, dtype=dtype).expand(2, 3, 4, 8)
    rect = torch.tensor([1, 2, 2, 5])
    emu._start_launch_recording(1)
    try:
        dx = emu._batch_drop_block_backward(g, rect)
    finally:
        launches = emu._stop_launch_recording().splitlines()
    assert len(launches) == 1 and "bdb::drop_block_strided_kernel<" in launches[0]
    assert torch.equal(dx, reference.batch_drop_block(g.contiguous(), rect))
    assert dx.is_contiguous()


def test_batch_drop_block_backward_is_the_same_mask(emulated_ops):
    x = _input((2, 3, 5, 8), torch.float64).requires_grad_()
    rect = torch.tensor([1, 2, 3, 4])
    g = _input((2, 3, 5, 8), torch.float64, seed=1)
    (dx,) = torch.autograd.grad(emulated_ops.batch_drop_block(x, rect), x, g)
    (dx_ref,) = torch.autograd.grad(reference.batch_drop_block(x, rect), x, g)
    assert torch.equal(dx, dx_ref)


# drop_pool: plane pooling (NCHW) picks lane groups of 1..32 from H*W / VEC; channel pooling
# (channels_last) runs blocks of (up to 32 channel vectors) x (position slices), merged in slice order.
POOL_CASES = [
    ((2, 3, 5, 7), [1, 2, 3, 4], NCHW, torch.float32, "random"),  # 35 scalars: group 32, lanes stride twice
    ((3, 37, 1, 3), [0, 1, 1, 1], NCHW, torch.float32, "random"),  # 3 scalars: group 4, one lane idle
    ((1, 130, 1, 1), [0, 0, 0, 0], NCHW, torch.float32, "random"),  # 1x1 maps: group 1; 130 planes
    ((2, 20, 2, 8), [0, 2, 2, 3], NCHW, torch.float32, "ties"),  # float4: 4 vectors, group 4; 40 planes
    ((2, 5, 4, 8), [1, 0, 2, 8], NCHW, torch.float16, "ties"),  # half x 8: 4 vectors per plane
    ((2, 3, 3, 4), [0, 0, 2, 2], NCHW, torch.float32, "negative"),  # max from a dropped zero: argmax -1
    ((2, 3, 3, 4), [0, 0, 3, 4], NCHW, torch.float64, "random"),  # everything dropped
    ((2, 8, 3, 4), [1, 1, 1, 2], NHWC, torch.float32, "ties"),  # 2 channel vectors: 30 of 32 threads return
    ((2, 300, 2, 3), [0, 1, 2, 1], NHWC, torch.float32, "random"),  # 75 float4 vectors over 128 threads
    ((2, 7, 3, 3), [1, 1, 1, 1], NHWC, torch.float64, "negative"),  # C odd: scalar channels
    ((2, 16, 2, 2), [0, 0, 1, 1], NHWC, torch.bfloat16, "ties"),  # bf16 x 8 channels
    ((3, 64, 6, 5), [2, 1, 2, 3], NHWC, torch.float16, "ties"),  # 8 vectors x 32 slices for 30 positions
    ((2, 264, 3, 3), [0, 0, 1, 3], NHWC, torch.float32, "ties"),  # 3 channel tiles, the last 8 channels wide
]


def _pool_id(case):
    shape, rect, fmt, dtype, values = case
    layout = "nhwc" if fmt == NHWC else "nchw"
    return f"{'x'.join(map(str, shape))}-{layout}-{str(dtype)[6:]}-{values}"


def _tol(dtype):
    return {"rtol": 1e-2, "atol": 1e-2} if dtype in (torch.float16, torch.bfloat16) else {"rtol": 1e-6, "atol": 1e-6}


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=_pool_id)
def test_drop_pool_matches_reference_and_cpu(emulated_ops, case, mode):
    shape, rect, fmt, dtype, values = case
    x = _input(shape, dtype, fmt, values=values)
    out, argmax = emulated_ops.drop_pool(x, rect, mode)
    want = reference.drop_pool(x.float(), rect, mode)
    torch.testing.assert_close(out.float(), want, **_tol(dtype))
    cpu_out, cpu_argmax = bdb_ext.ops.drop_pool(x, rect, mode)
    if mode == "max":
        # Same winner as the CPU kernel, ties included: the first kept position with the max.
        assert torch.equal(out, cpu_out)
        assert torch.equal(argmax, cpu_argmax)
    else:
        assert argmax.numel() == 0
        torch.testing.assert_close(out, cpu_out, **_tol(dtype))


def test_drop_pool_max_picks_the_first_kept_maximum(emulated_ops):
    x = torch.zeros(1, 2, 3, 4)
    x[0, 0] = torch.tensor([[1.0, 5.0, 5.0, 0.0], [5.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0]])
    x[0, 1] = -1.0
    out, argmax = emulated_ops.drop_pool(x, [0, 1, 1, 1], "max")  # drops (0, 1)
    assert out.tolist() == [[5.0, 0.0]]
    assert argmax.tolist() == [[2, -1]]  # (0, 2) is the first kept 5; channel 1's max is a dropped 0


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("fmt", [NCHW, NHWC], ids=["nchw", "nhwc"])
def test_drop_pool_backward_matches_reference(emulated_ops, mode, fmt):
    x = _input((2, 8, 3, 5), torch.float64, fmt, seed=3).requires_grad_()  # distinct values: no ties
    rect = [1, 1, 2, 3]
    g = _input((2, 8), torch.float64, seed=4)
    out, _ = emulated_ops.drop_pool(x, rect, mode)
    (dx,) = torch.autograd.grad(out, x, g)
    (dx_ref,) = torch.autograd.grad(reference.drop_pool(x, rect, mode), x, g)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-12, atol=1e-12)
    assert dx.is_contiguous(memory_format=fmt)


def test_empty_batch(emulated_ops):
    x = torch.randn(0, 3, 4, 5)
    assert emulated_ops.batch_drop_block(x, [0, 0, 1, 1]).shape == x.shape
    out, argmax = emulated_ops.drop_pool(x, [0, 0, 1, 1], "max")
    assert out.shape == (0, 3) and argmax.shape == (0, 3)


def test_argument_errors_match_the_cpu_op(emulated_ops):
    for bad_x, rect in [
        (torch.zeros(2, 3, 4, 5, dtype=torch.int32), [0, 0, 1, 1]),
        (torch.zeros(2, 3, 4), [0, 0, 1, 1]),
        (torch.zeros(2, 3, 4, 5), [0, 0, 5, 1]),
        (torch.zeros(2, 3, 4, 5), torch.tensor([0, 0, 1, 1], dtype=torch.int32)),
    ]:
        with pytest.raises(RuntimeError) as cpu_error:
            bdb_ext.ops.batch_drop_block(bad_x, rect)
        with pytest.raises(RuntimeError) as emu_error:
            emulated_ops.batch_drop_block(bad_x, rect)
        assert str(emu_error.value).split("\n")[0].replace("bdb_ext_emu", "bdb_ext") == str(cpu_error.value).split(
            "\n"
        )[0]


def test_channels_last_max_keeps_the_nan_and_tie_rules_across_position_slices(emulated_ops):
    """Each position is its own slice here (16 positions, 2 channel vectors: 2 x 16 threads), so
    the winners below come out of the slice merge, not out of one thread's walk."""
    x = torch.full((1, 8, 4, 4), -1.0)
    x[0, 0, 3, 3] = x[0, 0, 1, 2] = float("nan")  # first NaN in row-major order: position 6
    x[0, 1, 3, 0] = x[0, 1, 0, 3] = x[0, 1, 2, 1] = 4.0  # tie: position 3 wins
    x[0, 2, 0, 0] = float("nan")  # NaN inside the rectangle is dropped; the kept max is -1 < 0
    x = x.contiguous(memory_format=NHWC)
    rect = [0, 0, 1, 1]
    out, argmax = emulated_ops.drop_pool(x, rect, "max")
    cpu_out, cpu_argmax = bdb_ext.ops.drop_pool(x, rect, "max")
    torch.testing.assert_close(out, cpu_out, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(argmax, cpu_argmax)
    assert argmax[0, :3].tolist() == [6, 3, -1] and out[0, 0].isnan()


@pytest.mark.parametrize("fmt", [NCHW, NHWC], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("bad", [-2, 15])
def test_drop_pool_backward_rejects_an_out_of_range_argmax_in_the_kernel(emulated_ops, fmt, bad):
    """An argmax index outside [-1, H*W) stops the kernel (a device-side assert on a GPU) instead of
    silently dropping that plane's gradient."""
    rect = torch.tensor([0, 0, 1, 1])
    argmax = torch.zeros(2, 8, dtype=torch.int64)
    argmax[1, 5] = bad
    with pytest.raises(RuntimeError, match=r"device-side assert triggered: .*argmax holds an index outside"):
        torch.ops.bdb_ext_emu._drop_pool_backward(torch.ones(2, 8), argmax, rect, "max", [2, 8, 3, 5], fmt == NHWC)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("fmt", [NCHW, NHWC], ids=["nchw", "nhwc"])
def test_drop_pool_backward_reads_an_expanded_gradient_in_place(emulated_ops, mode, fmt):
    x = _input((3, 8, 3, 4), torch.float32, fmt, seed=5)
    rect = torch.tensor([1, 0, 1, 4])
    _, argmax = emulated_ops.drop_pool(x, rect, mode)
    expanded = torch.randn(1, 8).expand(3, 8)  # stride (0, 1), as the gradient of a sum over N
    transposed = torch.randn(8, 3).t()  # stride (1, 3)
    for g in (expanded, transposed):
        dx = torch.ops.bdb_ext_emu._drop_pool_backward(g, argmax, rect, mode, list(x.shape), fmt == NHWC)
        want = torch.ops.bdb_ext_emu._drop_pool_backward(g.contiguous(), argmax, rect, mode, list(x.shape), fmt == NHWC)
        assert torch.equal(dx, want)
