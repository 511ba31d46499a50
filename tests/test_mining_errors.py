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


def test_mine_backward_rejects_bad_indices():
    x = torch.randn(4, 2)
    d = torch.ones(4)
    idx = torch.tensor([1, 0, 3, 2])
    with pytest.raises(RuntimeError, match="idx_p.*is not a row of x"):
        torch.ops.bdb_ext._batch_hard_mine_backward(d, d, x, torch.tensor([1, 0, 9, 2]), idx, d, d)
    with pytest.raises(RuntimeError, match="idx_n must be int64"):
        torch.ops.bdb_ext._batch_hard_mine_backward(d, d, x, idx, idx.int(), d, d)
