"""Bad input to the drop ops and layers gives clear errors, never a crash or a silent answer."""

from __future__ import annotations

import pytest
import torch

import bdb_ext


def test_x_must_be_4d(backend):
    with pytest.raises(RuntimeError, match=r"x must be a 4-D tensor \(N, C, H, W\), got 3-D"):
        backend.ops.batch_drop_block(torch.randn(2, 3, 4, device=backend.device), [0, 0, 1, 1])
    with pytest.raises(RuntimeError, match="x must be a 4-D tensor"):
        backend.ops.drop_pool(torch.randn(2, 3, 4, 4, 1, device=backend.device), [0, 0, 1, 1])


def test_x_must_be_floating(backend):
    with pytest.raises(RuntimeError, match="x must be float32, float64, float16 or bfloat16, got Long"):
        backend.ops.batch_drop_block(torch.ones(1, 1, 2, 2, dtype=torch.int64, device=backend.device), [0, 0, 1, 1])


def test_empty_map_is_rejected(backend):
    with pytest.raises(RuntimeError, match="H >= 1 and W >= 1"):
        backend.ops.drop_pool(torch.randn(1, 1, 0, 3, device=backend.device), [0, 0, 0, 0])


def test_rect_dtype_and_shape(backend):
    x = torch.randn(1, 2, 4, 4, device=backend.device)
    with pytest.raises(RuntimeError, match="rect must be an int64 tensor"):
        backend.ops.batch_drop_block(x, torch.tensor([0, 0, 1, 1], dtype=torch.int32))
    with pytest.raises(RuntimeError, match=r"rect must have shape \(4,\)"):
        backend.ops.batch_drop_block(x, torch.tensor([0, 0, 1]))
    with pytest.raises(RuntimeError, match=r"rect must have shape \(4,\)"):
        backend.ops.drop_pool(x, torch.zeros(2, 2, dtype=torch.int64))


@pytest.mark.parametrize(
    "rect, message",
    [
        ([0, 0, -1, 2], "height and width must be >= 0"),
        ([0, 0, 2, -3], "height and width must be >= 0"),
        ([3, 0, 2, 4], "must lie inside the 4x4 feature map"),
        ([0, 2, 1, 3], "must lie inside the 4x4 feature map"),
        ([-1, 0, 1, 1], "must lie inside the 4x4 feature map"),
    ],
)
def test_rect_outside_the_map(backend, rect, message):
    x = torch.randn(1, 2, 4, 4, device=backend.device)
    with pytest.raises(RuntimeError, match=message):
        backend.ops.batch_drop_block(x, rect)
    with pytest.raises(RuntimeError, match=message):
        backend.ops.drop_pool(x, rect, "max")


@pytest.mark.parametrize("rect", [[0, 0, -1, 2], [3, 0, 2, 4], [0, 2, 1, 3], [-1, 0, 1, 1]])
def test_reference_path_refuses_the_same_rects(rect):
    """One rule for the fused op and the eager reference (BDBNet(fused=False)): before, slicing clipped an
    overhanging rect and wrapped a negative top around, silently."""
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(RuntimeError) as fused:
        bdb_ext.ops.drop_pool(x, rect, "max")
    for op in (bdb_ext.reference.drop_pool, bdb_ext.reference.batch_drop_block,
               bdb_ext.reference.batch_drop_block_broadcast):
        with pytest.raises(ValueError) as eager:
            op(x, torch.tensor(rect))
        # The same sentence as the C++ check, after the op's name.
        assert str(eager.value).split(": ", 1)[1] in str(fused.value)


def test_unfused_model_refuses_a_rect_outside_the_map():
    from bdb_ext.models import BDBNet

    images, rect = torch.randn(2, 3, 64, 32), torch.tensor([3, 0, 2, 2])  # the BDB map is 4x2
    for fused in (True, False):
        model = BDBNet(3, "resnet18", pretrained=False, fused=fused).train()
        with pytest.raises((RuntimeError, ValueError), match="must lie inside the 4x2 feature map"):
            model(images, rect)


def test_python_level_argument_errors(backend):
    x = torch.randn(1, 2, 4, 4, device=backend.device)
    with pytest.raises(ValueError, match="mode must be one of"):
        backend.ops.drop_pool(x, [0, 0, 1, 1], "median")
    with pytest.raises(TypeError, match="rect must be an int64 tensor or a sequence of 4 ints"):
        backend.ops.batch_drop_block(x, "0,0,1,1")
    with pytest.raises(ValueError, match="rect must hold 4 ints"):
        backend.ops.batch_drop_block(x, (0, 0, 1.5, 1))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        backend.ops.batch_drop_block(x.numpy() if x.device.type == "cpu" else [1.0], [0, 0, 1, 1])


def test_unknown_mode_reaches_cpp_check_too():
    with pytest.raises(RuntimeError, match='mode must be "max" or "avg"'):
        torch.ops.bdb_ext.drop_pool(torch.randn(1, 1, 2, 2), torch.tensor([0, 0, 1, 1]), "sum")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_rect_on_another_device_than_x():
    with pytest.raises(RuntimeError, match="rect must be on the CPU or on x's device"):
        bdb_ext.ops.batch_drop_block(torch.randn(1, 1, 4, 4), torch.tensor([0, 0, 1, 1], device="cuda"))


@pytest.mark.parametrize("cls", [bdb_ext.BatchDropBlock, bdb_ext.BatchDropPool])
def test_layer_argument_validation(cls):
    with pytest.raises(ValueError, match=r"h_ratio must be in \[0, 1\], got 1.5"):
        cls(h_ratio=1.5)
    with pytest.raises(TypeError, match="w_ratio must be a real number"):
        cls(w_ratio="half")
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        cls(generator=123)
    with pytest.raises(ValueError, match=r"x must be a 4-D tensor \(N, C, H, W\)"):
        cls()(torch.randn(2, 3))


def test_pool_layer_mode_validation():
    with pytest.raises(ValueError, match="mode must be one of"):
        bdb_ext.BatchDropPool(mode="sum")


@pytest.mark.parametrize(
    "rect",
    [[2**62, 0, 2**62, 4], [1, 0, 2**63 - 1, 4], [0, 2**62, 6, 2**62], [0, 1, 6, 2**63 - 1], [2**63 - 1, 0, 1, 1]],
)
def test_rect_bounds_check_does_not_overflow(backend, rect):
    """top + height used to wrap around to a negative number and pass the check."""
    x = torch.ones(2, 3, 6, 4, device=backend.device)
    with pytest.raises(RuntimeError, match="must lie inside the 6x4 feature map"):
        backend.ops.batch_drop_block(x, rect)
    with pytest.raises(RuntimeError, match="must lie inside the 6x4 feature map"):
        backend.ops.drop_pool(x, rect, "max")
    with pytest.raises(RuntimeError, match="must lie inside the 6x4 feature map"):
        backend.raw_ops._batch_drop_block_backward(x, torch.tensor(rect))


def _meta_cases(x: torch.Tensor, rect: torch.Tensor):
    """(call, argument name) for every drop op with one argument moved to the meta device."""
    meta_rect = rect.to("meta")
    g = torch.ones(x.shape[:2])
    argmax = torch.zeros(x.shape[:2], dtype=torch.int64)
    size = list(x.shape)
    return [
        (lambda ops: ops.batch_drop_block(x, meta_rect), "rect"),
        (lambda ops: ops.drop_pool(x, meta_rect, "max"), "rect"),
        (lambda ops: getattr(torch.ops, ops.namespace)._batch_drop_block_backward(x, meta_rect), "rect"),
        (lambda ops: getattr(torch.ops, ops.namespace)._drop_pool_backward(g, argmax.to("meta"), rect, "max", size, False), "argmax"),
        (lambda ops: getattr(torch.ops, ops.namespace)._drop_pool_backward(g, argmax, meta_rect, "avg", size, False), "rect"),
    ]


def test_meta_argument_among_real_ones_is_refused(backend):
    """A meta argument sends the call to the fake kernel, which used to return uninitialised memory
    on x's device as if it were the result."""
    x = torch.ones(2, 3, 6, 4, device=backend.device)
    rect = torch.tensor([1, 0, 2, 4])
    for call, name in _meta_cases(x, rect):
        with pytest.raises(RuntimeError, match=f"{name} must be on .*'s device \\({backend.device.type}.*\\), got meta"):
            call(backend.ops)


def test_all_meta_arguments_still_infer_shapes(backend):
    x = torch.empty(2, 3, 6, 4, device="meta")
    rect = torch.tensor([1, 0, 2, 4], device="meta")
    assert backend.ops.batch_drop_block(x, rect).device.type == "meta"
    out, argmax = backend.ops.drop_pool(x, rect, "max")
    assert out.shape == (2, 3) and argmax.device.type == "meta"
    # A CPU rect is allowed with x on any device, meta included.
    assert backend.ops.drop_pool(x, [1, 0, 2, 4], "avg")[0].device.type == "meta"


def _pool_backward(backend, grad_out, argmax, mode="max", size=(2, 3, 6, 4), rect=(1, 0, 2, 4)):
    return backend.raw_ops._drop_pool_backward(grad_out, argmax, torch.tensor(rect), mode, list(size), False)


@pytest.mark.parametrize("bad", [10**9, 24, -2, -(10**9)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_pool_backward_refuses_argmax_out_of_range(backend, bad, channels_last):
    """An argmax of 1e9 used to segfault, one past the end (H*W = 24) to write out of bounds.

    The CPU kernel's host check names the value and its position; the CUDA kernel checks where it reads the
    index (a device-side assert, no host sync), which the emulated backend runs as written.
    """
    if backend.name == "cuda":
        pytest.skip("a device-side assert ends the CUDA context; the emulated backend runs the same kernel check")
    g = torch.ones(2, 3, device=backend.device)
    argmax = torch.zeros(2, 3, dtype=torch.int64, device=backend.device)
    argmax[1, 2] = bad
    message = (r"device-side assert triggered: bdb_ext::_drop_pool_backward: argmax holds an index outside"
               if backend.is_emulated else rf"argmax must hold indices in \[-1, 24\), got {bad} at flat position 5")
    with pytest.raises(RuntimeError, match=message):
        backend.raw_ops._drop_pool_backward(g, argmax, torch.tensor([1, 0, 2, 4]), "max", [2, 3, 6, 4], channels_last)


def test_pool_backward_accepts_every_valid_argmax(backend):
    g = torch.ones(2, 3, device=backend.device)
    argmax = torch.tensor([[-1, 0, 23], [5, -1, 22]], device=backend.device)
    dx = _pool_backward(backend, g, argmax)
    assert dx.sum().item() == 4 and dx.flatten(2)[0, 2, 23].item() == 1


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_pool_backward_refuses_a_non_float_grad(backend, dtype):
    g = torch.ones(2, 3, device=backend.device).to(dtype)
    argmax = torch.zeros(2, 3, dtype=torch.int64, device=backend.device)
    with pytest.raises(RuntimeError, match="grad_out must be float32, float64, float16 or bfloat16"):
        _pool_backward(backend, g, argmax)
    with pytest.raises(RuntimeError, match="grad_out must be float32, float64, float16 or bfloat16"):
        _pool_backward(backend, g, torch.empty(0, 0, dtype=torch.int64), mode="avg")


def test_pool_backward_refuses_bad_argmax_and_sizes(backend):
    g = torch.ones(2, 3, device=backend.device)
    with pytest.raises(RuntimeError, match="argmax must be int64 with the shape of grad_out"):
        _pool_backward(backend, g, torch.zeros(2, 3, dtype=torch.int32, device=backend.device))
    with pytest.raises(RuntimeError, match="argmax must be int64 with the shape of grad_out"):
        _pool_backward(backend, g, torch.zeros(3, 2, dtype=torch.int64, device=backend.device))
    with pytest.raises(RuntimeError, match=r"grad_out must have shape \(N, C\) = \(2, 4\)"):
        _pool_backward(backend, g, torch.zeros(2, 3, dtype=torch.int64, device=backend.device), size=(2, 4, 6, 4))
    with pytest.raises(RuntimeError, match="input_size must be >= 0"):
        _pool_backward(backend, g, torch.zeros(2, 3, dtype=torch.int64, device=backend.device), size=(2, 3, -6, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_pool_backward_refuses_argmax_on_another_device():
    """A CPU argmax with a CUDA gradient used to be an illegal memory access."""
    g = torch.ones(2, 3, device="cuda")
    with pytest.raises(RuntimeError, match=r"argmax must be on grad_out's device \(cuda:0\), got cpu"):
        torch.ops.bdb_ext._drop_pool_backward(g, torch.zeros(2, 3, dtype=torch.int64), torch.tensor([1, 0, 2, 4]), "max", [2, 3, 6, 4], False)
