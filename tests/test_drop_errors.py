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
