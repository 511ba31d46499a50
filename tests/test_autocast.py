"""Autocast: every op has an Autocast kernel, as ATen's ops do.

- the drop ops run in their input's dtype (they support fp16/bf16 natively);
- the mining ops run in float32: fp16/bf16 inputs are promoted (float64 is kept), and the ATen calls inside their
  kernels are not autocast themselves (before, the CPU kernel's internal matmul came back in bf16 and the op
  failed with "expected scalar type Float but found BFloat16").

The ``cuda-emulated`` backend runs on CPU tensors, so CPU autocast covers both of its namespaces' registrations.
"""

from __future__ import annotations

import pytest
import torch

import bdb_ext
from bdb_ext import reference
from bdb_ext.losses import BDBLoss
from bdb_ext.models import BDBNet

AMP_DTYPES = [torch.bfloat16, torch.float16]


def _autocast(backend, dtype):
    return torch.autocast(backend.device.type, dtype=dtype)


@pytest.mark.parametrize("amp", AMP_DTYPES)
def test_reproducer_triplet_loss_on_float32_under_autocast(backend, amp):
    torch.manual_seed(0)
    x = torch.randn(8, 16, device=backend.device, requires_grad=True)
    labels = torch.arange(8, device=backend.device) // 2
    with _autocast(backend, amp):
        loss = backend.ops.batch_hard_triplet_loss(x, labels)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, backend.ops.batch_hard_triplet_loss(x, labels))
    loss.backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("amp", AMP_DTYPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_mining_ops_run_in_float32(backend, amp, dtype):
    torch.manual_seed(1)
    x = torch.randn(12, 10, device=backend.device).to(dtype).requires_grad_()
    labels = torch.arange(12, device=backend.device) // 3
    with _autocast(backend, amp):
        dist = backend.ops.pairwise_distance(x)
        d_ap, d_an, idx_p, idx_n = backend.ops.batch_hard_mine(x, labels)
        loss = backend.ops.batch_hard_triplet_loss(x, labels, 0.3)
    x32 = x.detach().float()
    assert dist.dtype == d_ap.dtype == d_an.dtype == loss.dtype == torch.float32
    torch.testing.assert_close(dist, backend.ops.pairwise_distance(x32))
    expected = backend.ops.batch_hard_mine(x32, labels)
    torch.testing.assert_close((d_ap, d_an, idx_p, idx_n), expected)
    (dist.sum() + d_ap.sum() + d_an.sum() + loss).backward()
    assert x.grad.dtype == dtype  # the gradient flows back through autocast's cast to x's dtype
    assert torch.isfinite(x.grad.float()).all() and x.grad.abs().sum() > 0


def test_mining_keeps_float64_under_autocast(backend):
    x = torch.randn(6, 4, dtype=torch.float64, device=backend.device)
    labels = torch.tensor([0, 0, 1, 1, 2, 2], device=backend.device)
    with _autocast(backend, torch.bfloat16):
        assert backend.ops.pairwise_distance(x).dtype == torch.float64
        assert backend.ops.batch_hard_mine(x, labels)[0].dtype == torch.float64


@pytest.mark.parametrize("amp", AMP_DTYPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_drop_ops_run_in_the_input_dtype(backend, amp, dtype):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 6, 4, device=backend.device).to(dtype).requires_grad_()
    rect = [1, 0, 2, 4]
    with _autocast(backend, amp):
        y = backend.ops.batch_drop_block(x, rect)
        pooled_max, argmax = backend.ops.drop_pool(x, rect, "max")
        pooled_avg, _ = backend.ops.drop_pool(x, rect, "avg")
    assert y.dtype == pooled_max.dtype == pooled_avg.dtype == dtype
    assert torch.equal(y, reference.batch_drop_block(x.detach(), rect))
    assert torch.equal(pooled_max, reference.drop_pool(x.detach(), rect, "max"))
    (y.float().sum() + pooled_max.float().sum() + pooled_avg.float().sum()).backward()
    assert x.grad.dtype == dtype and x.grad.abs().sum() > 0


@pytest.mark.parametrize("amp", AMP_DTYPES)
def test_bdb_training_step_under_cpu_autocast(amp):
    """What ``bdb-ext train --amp bf16`` / ``--amp fp16`` does on the CPU: forward and loss under autocast, the
    backward outside, fp16 through a GradScaler."""
    torch.manual_seed(3)
    model = BDBNet(num_classes=4, backbone="resnet18", pretrained=False).train()
    criterion = BDBLoss(margin=0.3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    # A random-init network's fp16 gradients overflow at GradScaler's default first scale (2**16), which then
    # skips the step by design (here the first conv overflows from 2**10 up); 2**4 lets this single step through.
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 4, enabled=amp == torch.float16)
    images, labels = torch.randn(8, 3, 64, 32), torch.arange(4).repeat(2)
    before = model.bdb_reduction[0].weight.detach().clone()
    with torch.autocast("cpu", dtype=amp):
        terms = criterion(model(images), labels)
    assert all(t.dtype == torch.float32 and torch.isfinite(t) for t in terms)
    assert terms.triplet_global > 0 and terms.triplet_bdb > 0
    optimizer.zero_grad()
    scaler.scale(terms.total).backward()
    scaler.unscale_(optimizer)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    scaler.step(optimizer)
    scaler.update()
    assert not torch.equal(model.bdb_reduction[0].weight, before)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_compiled_ops_under_autocast_match_eager():
    labels = torch.arange(4) // 2
    rect = torch.tensor([1, 0, 2, 4])

    def head(x):
        pooled = bdb_ext.ops.drop_pool(x, rect, "max")[0]
        return bdb_ext.ops.batch_hard_triplet_loss(pooled, labels), pooled

    x = torch.randn(4, 8, 6, 4).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        compiled = torch.compile(head, fullgraph=True)(x)
        eager = head(x)
    assert compiled[0].dtype == torch.float32 and compiled[1].dtype == torch.bfloat16
    torch.testing.assert_close(compiled, eager)
