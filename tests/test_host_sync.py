"""A BDB training step never waits on the host: no host<->device copy, no read of a device value on the host,
no op whose output shape depends on device data.

Runs on any machine: FakeTensorMode makes ``cuda`` tensors (shapes, dtypes and devices, no data, no GPU), and a
TorchDispatchMode below it sees every ATen and bdb_ext op the step runs (autocast and autograd included). On a
real GPU each of these would stall the stream: a pageable host-to-device copy is synchronous, ``.item()`` and
data-dependent shapes wait for the kernels before it. The backward is not run here: the autograd engine
starts a thread per CUDA device, which needs a real one (the GPU check covers it with
``torch.cuda.set_sync_debug_mode("error")``).
"""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from bdb_ext.losses import BDBLoss
from bdb_ext.models import BDBNet

aten = torch.ops.aten

# Ops that read device data on the host (a sync) or size their output by it.
_HOST_READS = {aten._local_scalar_dense, aten.item}
_DATA_DEPENDENT_SHAPES = {
    aten.nonzero, aten.masked_select, aten.unique_dim, aten._unique, aten._unique2, aten.unique_consecutive,
    aten.unique_dim_consecutive, aten.repeat_interleave, aten.argwhere,
}


def _device_type(value: object) -> str | None:
    if isinstance(value, torch.device):
        return value.type
    if isinstance(value, str):
        return torch.device(value).type
    return None


class HostSyncAudit(TorchDispatchMode):
    """Records every op that would make the host wait for (or feed) the GPU."""

    def __init__(self) -> None:
        super().__init__()
        self.findings: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if packet in _HOST_READS:
            self.findings.append(f"{func}: a device value read on the host")
        elif packet in _DATA_DEPENDENT_SHAPES:
            self.findings.append(f"{func}: an output shape that depends on device data")
        elif packet is aten._to_copy:
            source, target = args[0].device.type, _device_type(kwargs.get("device"))
            if target is not None and target != source:
                self.findings.append(f"{func}: a {source} -> {target} copy")
        elif packet is aten.copy_:
            target, source = args[0].device.type, args[1].device.type
            if target != source and isinstance(args[1], torch.Tensor) and args[1].dim() > 0:
                self.findings.append(f"{func}: a {source} -> {target} copy")
        return func(*args, **kwargs)


@pytest.fixture
def fake_cuda():
    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        yield mode


def _training_steps(steps: int, model: BDBNet, criterion: BDBLoss, audit: HostSyncAudit) -> None:
    images = torch.randn(8, 3, 64, 32, device="cuda")
    labels = torch.arange(4, device="cuda").repeat(2)
    with audit:
        for _ in range(steps):
            output = model(images)
            criterion(output, labels).total


def test_the_audit_sees_a_host_to_device_copy_and_a_sync(fake_cuda):
    # The audit itself can fail: the very construction the old rectangle code used, and .item().
    audit = HostSyncAudit()
    with audit:
        size = torch.tensor([3, 8], dtype=torch.int64, device="cuda")
        on_device = torch.zeros(2, device="cuda")
        _ = on_device.cpu()
        with pytest.raises(Exception, match="nonzero"):  # fake tensors cannot size it either
            torch.nonzero(on_device)
    assert any("cpu -> cuda" in f for f in audit.findings), audit.findings
    assert any("cuda -> cpu" in f for f in audit.findings), audit.findings
    assert any("nonzero" in f for f in audit.findings), audit.findings
    assert size.device.type == "cuda"


@pytest.mark.parametrize("amp", [None, torch.bfloat16])
def test_bdb_training_step_on_cuda_has_no_host_transfer_or_sync(fake_cuda, amp):
    with torch.device("cuda"):  # built on the fake GPU (a fake module cannot be moved there)
        model = BDBNet(num_classes=4, backbone="resnet18", pretrained=False).train()
    assert model.trunk[0].weight.device.type == "cuda"
    criterion = BDBLoss(margin=0.3)
    audit = HostSyncAudit()
    with torch.autocast("cuda", dtype=amp, enabled=amp is not None):
        _training_steps(2, model, criterion, audit)
    assert audit.findings == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_bdb_training_step_on_a_gpu_never_syncs_and_is_graph_capturable():
    """The same step on a real GPU, forward and backward: torch's sync debug mode raises on any synchronising
    call, and CUDA graph capture refuses syncs and pageable host copies."""
    torch.manual_seed(0)
    model = BDBNet(num_classes=4, backbone="resnet18", pretrained=False).cuda().train()
    criterion = BDBLoss(margin=0.3)
    images = torch.randn(8, 3, 64, 32, device="cuda")
    labels = torch.arange(4, device="cuda").repeat(2)

    def step() -> torch.Tensor:
        total = criterion(model(images), labels).total
        total.backward()
        return total

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (cuDNN algorithm search, allocator) off the checked steps
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()

    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")

    model.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step()
    for _ in range(2):
        graph.replay()
    torch.cuda.synchronize()
    assert torch.isfinite(captured)
