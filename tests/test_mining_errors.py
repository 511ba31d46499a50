"""Bad input to pairwise_distance and batch_hard_mine fails with a message that names the argument."""

from __future__ import annotations

import pytest
import torch


def test_mine_rejects_non_2d_x(backend):
    labels = torch.zeros(4, dtype=torch.int64, device=backend.device)
    for shape in [(4,), (4, 2, 3)]:
        with pytest.raises(RuntimeError, match=r"x must be a 2-D tensor \(N, D\)"):
            backend.ops.batch_hard_mine(torch.randn(shape, device=backend.device), labels)


def test_mine_rejects_labels_of_wrong_length(backend):
    x = torch.randn(5, 3, device=backend.device)
    with pytest.raises(RuntimeError, match=r"labels must have shape \(N,\) = \(5,\)"):
        backend.ops.batch_hard_mine(x, torch.zeros(4, dtype=torch.int64, device=backend.device))
    with pytest.raises(RuntimeError, match=r"labels must have shape"):
        backend.ops.batch_hard_mine(x, torch.zeros(5, 1, dtype=torch.int64, device=backend.device))


@pytest.mark.parametrize("dtype", [torch.int32, torch.float32, torch.bool])
def test_mine_rejects_labels_of_wrong_dtype(backend, dtype):
    x = torch.randn(5, 3, device=backend.device)
    with pytest.raises(RuntimeError, match="labels must be an int64 tensor"):
        backend.ops.batch_hard_mine(x, torch.zeros(5, dtype=dtype, device=backend.device))


def test_mine_rejects_labels_on_another_device(backend):
    if backend.device.type != "cuda":
        pytest.skip("needs x on a CUDA device")
    x = torch.randn(5, 3, device=backend.device)
    with pytest.raises(RuntimeError, match="labels must be on x's device"):
        backend.ops.batch_hard_mine(x, torch.zeros(5, dtype=torch.int64))


def test_mine_rejects_integer_x(backend):
    with pytest.raises(RuntimeError, match="x must be float32, float64, float16 or bfloat16"):
        backend.ops.batch_hard_mine(
            torch.zeros(3, 2, dtype=torch.int64, device=backend.device),
            torch.zeros(3, dtype=torch.int64, device=backend.device),
        )


def test_mine_rejects_non_tensors(backend):
    with pytest.raises(TypeError, match="labels must be a torch.Tensor"):
        backend.ops.batch_hard_mine(torch.randn(3, 2, device=backend.device), [0, 0, 1])


def test_pairwise_rejects_bad_input(backend):
    dev = backend.device
    with pytest.raises(RuntimeError, match="same embedding size D"):
        backend.ops.pairwise_distance(torch.randn(3, 2, device=dev), torch.randn(3, 4, device=dev))
    with pytest.raises(RuntimeError, match="same dtype"):
        backend.ops.pairwise_distance(torch.randn(3, 2, device=dev), torch.randn(3, 2, device=dev, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"y must be a 2-D tensor"):
        backend.ops.pairwise_distance(torch.randn(3, 2, device=dev), torch.randn(2, device=dev))


def _mine_backward(backend, idx_p, idx_n, n=4, **override):
    x = torch.randn(n, 2, device=backend.device)
    d = torch.ones(n, device=backend.device)
    args = dict(grad_ap=d, grad_an=d, x=x, idx_p=idx_p, idx_n=idx_n, d_ap=d, d_an=d)
    args.update(override)
    return backend.raw_ops._batch_hard_mine_backward(*args.values())


@pytest.mark.parametrize(
    "name, bad, interval",
    [("idx_p", 10**9, r"\[0, 4\)"), ("idx_p", 4, r"\[0, 4\)"), ("idx_p", -1, r"\[0, 4\)"),
     ("idx_n", 4, r"\[-1, 4\)"), ("idx_n", -2, r"\[-1, 4\)"), ("idx_n", -(10**9), r"\[-1, 4\)")],
)
def test_mine_backward_refuses_indices_out_of_range(backend, name, bad, interval):
    """One past the end used to write out of bounds; 1e9 to crash.

    The CPU kernel's host check names the value and its position; the CUDA kernels check where they read the
    indices (a device-side assert, no host sync), which the emulated backend runs as written.
    """
    if backend.name == "cuda":
        pytest.skip("a device-side assert ends the CUDA context; the emulated backend runs the same kernel check")
    idx = {"idx_p": torch.tensor([1, 0, 3, 2], device=backend.device), "idx_n": torch.tensor([2, 3, -1, 0], device=backend.device)}
    idx[name][2] = bad
    message = (rf"device-side assert triggered: _batch_hard_mine_backward: {name} holds an index outside"
               if backend.is_emulated else rf"{name} must hold indices in {interval}, got {bad} at flat position 2")
    with pytest.raises(RuntimeError, match=message):
        _mine_backward(backend, idx["idx_p"], idx["idx_n"])


def test_mine_backward_refuses_bad_dtypes(backend):
    idx = torch.tensor([1, 0, 3, 2], device=backend.device)
    with pytest.raises(RuntimeError, match="idx_n must be int64"):
        _mine_backward(backend, idx, idx.int())
    with pytest.raises(RuntimeError, match="grad_ap must have x's dtype Float, got Double"):
        _mine_backward(backend, idx, idx, grad_ap=torch.ones(4, dtype=torch.float64, device=backend.device))
    with pytest.raises(RuntimeError, match="d_an must have x's dtype Float, got Long"):
        _mine_backward(backend, idx, idx, d_an=torch.ones(4, dtype=torch.int64, device=backend.device))


def test_meta_argument_among_real_ones_is_refused(backend):
    """A meta argument sends the call to the fake kernel, which used to return uninitialised memory
    on x's device as if it were the result."""
    dev = backend.device
    x = torch.randn(4, 2, device=dev)
    labels = torch.tensor([0, 0, 1, 1], device=dev)
    idx = torch.tensor([1, 0, 3, 2], device=dev)
    d = torch.ones(4, device=dev)
    cases = [
        (lambda: backend.ops.batch_hard_mine(x, labels.to("meta")), "labels"),
        (lambda: backend.ops.batch_hard_triplet_loss(x, labels.to("meta")), "labels"),
        (lambda: backend.ops.pairwise_distance(x, x.to("meta")), "y"),
        (lambda: backend.raw_ops._batch_hard_mine_backward(d, d, x, idx.to("meta"), idx, d, d), "idx_p"),
        (lambda: backend.raw_ops._batch_hard_mine_backward(d.to("meta"), d, x, idx, idx, d, d), "grad_ap"),
        (lambda: backend.raw_ops._pairwise_distance_backward(torch.ones(4, 4, device="meta"), x, x, torch.ones(4, 4, device=dev), False), "grad"),
    ]
    for call, name in cases:
        with pytest.raises(RuntimeError, match=rf"{name} must be on x's device \({dev.type}.*\), got meta"):
            call()


def test_all_meta_arguments_still_infer_shapes(backend):
    x = torch.empty(4, 2, device="meta")
    d_ap, d_an, idx_p, idx_n = backend.ops.batch_hard_mine(x, torch.empty(4, dtype=torch.int64, device="meta"))
    assert d_ap.shape == (4,) and idx_n.device.type == "meta"
