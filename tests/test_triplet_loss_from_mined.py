"""triplet_loss_from_mined, the fused loss on batch_hard_mine's outputs (one kernel forward, one backward):
values and gradients against the eager formula it replaces, gradcheck, opcheck, torch.compile, edge cases
(no negative, margin 0, gaps at the softplus threshold), determinism, bad inputs, and the launch count of
batch_hard_triplet_loss."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mining_cases import pk_labels, ragged_labels
from torch._dynamo.testing import CompileCounterWithBackend
from torch.utils._python_dispatch import TorchDispatchMode

import bdb_ext
from bdb_ext import reference

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

MARGINS = [None, 0.0, 0.3]
REDUCTIONS = ["mean", "sum", "none"]


def _ops(backend):
    return getattr(torch.ops, backend.ops.namespace)


def _mined(n: int, seed: int, dtype=torch.float64, device="cpu", missing: float = 0.25):
    """(d_ap, d_an, idx_n) as batch_hard_mine leaves them: d_ap >= 0, d_an > 0, and a fraction `missing`
    of anchors without a negative (idx_n = -1, d_an = inf)."""
    g = torch.Generator().manual_seed(seed)
    d_ap = torch.rand(n, generator=g, dtype=torch.float64) * 3
    d_an = torch.rand(n, generator=g, dtype=torch.float64) * 3 + 0.01
    idx_n = torch.randint(0, max(n, 1), (n,), generator=g)
    none = torch.rand(n, generator=g) < missing
    idx_n[none] = -1
    d_an[none] = math.inf
    return d_ap.to(dtype=dtype, device=device), d_an.to(dtype=dtype, device=device), idx_n.to(device)


def _check_against_eager(backend, d_ap, d_an, idx_n, margin, reduction, rtol=None, atol=None):
    d_ap = d_ap.detach().requires_grad_()
    d_an = d_an.detach().requires_grad_()
    out = _ops(backend).triplet_loss_from_mined(d_ap, d_an, idx_n, margin, reduction)
    assert out.dtype == d_ap.dtype and out.shape == (d_ap.shape if reduction == "none" else ())
    ra, rn = (t.detach().cpu().double().requires_grad_() for t in (d_ap, d_an))
    ref = reference.triplet_loss_from_mined(ra, rn, idx_n.cpu(), margin, reduction)
    torch.testing.assert_close(out.detach().cpu().double(), ref.detach(), rtol=rtol, atol=atol)
    weight = torch.linspace(0.5, 1.5, out.numel(), dtype=torch.float64).reshape(out.shape)
    g_ap, g_an = torch.autograd.grad((out * weight.to(out)).sum(), (d_ap, d_an))
    r_ap, r_an = torch.autograd.grad((ref * weight).sum(), (ra, rn))
    torch.testing.assert_close(g_ap.cpu().double(), r_ap, rtol=rtol, atol=atol)
    torch.testing.assert_close(g_an.cpu().double(), r_an, rtol=rtol, atol=atol)
    return out, g_ap, g_an


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", MARGINS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_op_matches_the_eager_formula(backend, dtype, margin, reduction):
    d_ap, d_an, idx_n = _mined(300, seed=1, dtype=dtype, device=backend.device)
    _, _, g_an = _check_against_eager(backend, d_ap, d_an, idx_n, margin, reduction)
    none = idx_n < 0
    assert none.any() and torch.equal(g_an[none], torch.zeros_like(g_an[none]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_op_low_precision_accumulates_in_fp32(backend, dtype):
    d_ap, d_an, idx_n = _mined(200, seed=2, dtype=dtype, device=backend.device)
    tol = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    for margin in (None, 0.3):
        _check_against_eager(backend, d_ap, d_an, idx_n, margin, "mean", rtol=tol, atol=tol)


@pytest.mark.parametrize("margin", [None, 0.3])
def test_no_anchor_with_a_negative_gives_zero_attached_and_zero_gradients(backend, margin):
    d_ap = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, device=backend.device, requires_grad=True)
    d_an = torch.full((3,), math.inf, dtype=torch.float64, device=backend.device, requires_grad=True)
    idx_n = torch.full((3,), -1, dtype=torch.int64, device=backend.device)
    for reduction in REDUCTIONS:
        out = _ops(backend).triplet_loss_from_mined(d_ap, d_an, idx_n, margin, reduction)
        assert out.requires_grad and torch.equal(out.detach(), torch.zeros_like(out))
        g_ap, g_an = torch.autograd.grad(out.sum(), (d_ap, d_an))
        assert torch.equal(g_ap, torch.zeros_like(g_ap)) and torch.equal(g_an, torch.zeros_like(g_an))


def test_anchors_without_a_negative_with_nan_distances_stay_out(backend):
    # Their d_an is never read, not even a NaN d_ap of theirs reaches the loss or the gradient.
    d_ap = torch.tensor([1.0, math.nan, 0.5], dtype=torch.float32, device=backend.device, requires_grad=True)
    d_an = torch.tensor([0.7, math.nan, math.inf], dtype=torch.float32, device=backend.device, requires_grad=True)
    idx_n = torch.tensor([2, -1, -1], device=backend.device)
    for margin in (None, 0.2):
        out = _ops(backend).triplet_loss_from_mined(d_ap, d_an, idx_n, margin, "mean")
        expected = F.softplus(torch.tensor(0.3)) if margin is None else torch.tensor(0.5)
        torch.testing.assert_close(out.detach().cpu(), expected)
        g_ap, g_an = torch.autograd.grad(out, (d_ap, d_an))
        assert torch.isfinite(g_ap).all() and torch.isfinite(g_an).all()
        assert g_ap[1:].abs().sum() == 0 and g_an[1:].abs().sum() == 0 and g_ap[0] == -g_an[0] != 0


def test_empty_batch(backend):
    empty = torch.empty(0, dtype=torch.float32, device=backend.device, requires_grad=True)
    idx_n = torch.empty(0, dtype=torch.int64, device=backend.device)
    for reduction in REDUCTIONS:
        out = _ops(backend).triplet_loss_from_mined(empty, empty, idx_n, None, reduction)
        assert out.shape == ((0,) if reduction == "none" else ()) and out.requires_grad
        assert out.sum().item() == 0
        (grad,) = torch.autograd.grad(out.sum(), empty)
        assert grad.shape == (0,)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_soft_margin_at_the_softplus_threshold(backend, dtype):
    # gap = d_ap - d_an on both sides of torch's threshold 20 and far out: finite, equal to softplus.
    gaps = torch.tensor([-800.0, -50.0, -20.0, -1e-3, 0.0, 1e-3, 19.5, 19.999, 20.0, 20.001, 20.5, 50.0, 1e4],
                        dtype=torch.float64)
    d_an = torch.full_like(gaps, 1000.0)
    d_ap = d_an + gaps
    idx_n = torch.arange(gaps.numel())
    d_ap, d_an = d_ap.to(backend.device, dtype), d_an.to(backend.device, dtype)
    out, g_ap, _ = _check_against_eager(backend, d_ap, d_an, idx_n.to(backend.device), None, "none")
    assert torch.isfinite(out).all() and torch.isfinite(g_ap).all()
    above = (gaps > 20).to(backend.device)
    assert torch.equal(out.detach()[above], (d_ap - d_an)[above])  # softplus(x) = x above the threshold
    leaf = d_ap.clone().requires_grad_()
    (slope,) = torch.autograd.grad(_ops(backend).triplet_loss_from_mined(leaf, d_an, idx_n.to(backend.device), None,
                                                                         "none").sum(), leaf)
    assert torch.equal(slope[above], torch.ones_like(slope[above]))


def test_hard_margin_zero_is_the_plain_hinge(backend):
    d_ap = torch.tensor([1.0, 2.0, 3.0, 0.0], dtype=torch.float64, device=backend.device, requires_grad=True)
    d_an = torch.tensor([2.0, 2.0, 1.0, 5.0], dtype=torch.float64, device=backend.device, requires_grad=True)
    idx_n = torch.tensor([1, 0, 3, 2], device=backend.device)
    out = _ops(backend).triplet_loss_from_mined(d_ap, d_an, idx_n, 0.0, "none")
    assert out.detach().cpu().tolist() == [0.0, 0.0, 2.0, 0.0]
    g_ap, g_an = torch.autograd.grad(out.sum(), (d_ap, d_an))
    # relu's gradient at exactly 0 (anchor 1) is 0, as torch.relu's.
    assert g_ap.cpu().tolist() == [0.0, 0.0, 1.0, 0.0] and g_an.cpu().tolist() == [0.0, 0.0, -1.0, 0.0]


# --- gradcheck, opcheck, compile -----------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [None, 0.3])
def test_gradcheck(margin, reduction):
    d_ap, d_an, idx_n = _mined(12, seed=3)
    d_an[idx_n < 0] = 7.0  # finite, so the numerical derivative of the (unread) value is defined
    d_ap.requires_grad_()
    d_an.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, n: bdb_ext.ops.mining._triplet_loss_from_mined(torch.ops.bdb_ext, a, n, idx_n, margin, reduction),
        (d_ap, d_an),
    )


def test_opcheck(backend):
    ops = _ops(backend)
    for dtype in (torch.float32, torch.float64):
        d_ap, d_an, idx_n = _mined(40, seed=4, dtype=dtype, device=backend.device)
        for margin in (None, 0.3):
            for reduction in REDUCTIONS:
                args = (d_ap.requires_grad_(), d_an.requires_grad_(), idx_n, margin, reduction)
                torch.library.opcheck(ops.triplet_loss_from_mined.default, args)
                grad = torch.ones(d_ap.shape if reduction == "none" else (), dtype=dtype, device=backend.device)
                torch.library.opcheck(ops._triplet_loss_from_mined_backward.default,
                                      (grad, d_ap.detach(), d_an.detach(), idx_n, margin, reduction))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_compile_fullgraph_uses_the_fused_op(backend, reduction):
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")

    @torch.compile(backend=counter, fullgraph=True)
    def step(x, labels):
        return backend.ops.batch_hard_triplet_loss(x, labels, None, reduction).sum()

    for seed in range(2):
        x = torch.randn(20, 6, generator=torch.Generator().manual_seed(seed)).to(backend.device).requires_grad_()
        labels = ragged_labels(20, seed=seed, device=backend.device)
        step(x, labels).backward()
        eager = x.detach().requires_grad_()
        backend.ops.batch_hard_triplet_loss(eager, labels, None, reduction).sum().backward()
        torch.testing.assert_close(x.grad, eager.grad)
    assert counter.frame_count == 1
    graph_text = "\n".join(str(g.graph) for g in counter.graphs)
    assert "triplet_loss_from_mined" in graph_text and "softplus" not in graph_text


# --- determinism -----------------------------------------------------------------------------------------------


def test_deterministic_and_equal_across_backends(backend):
    # The sum runs in one fixed order on every backend: repeated runs, and the CPU kernel and this backend's,
    # agree bitwise (fp32, enough anchors that the order matters).
    d_ap, d_an, idx_n = _mined(3000, seed=5, dtype=torch.float32, device=backend.device)
    for margin in (None, 0.3):
        first = _ops(backend).triplet_loss_from_mined(d_ap, d_an, idx_n, margin, "mean")
        for _ in range(3):
            assert torch.equal(_ops(backend).triplet_loss_from_mined(d_ap, d_an, idx_n, margin, "mean"), first)
        on_cpu = torch.ops.bdb_ext.triplet_loss_from_mined(d_ap.cpu(), d_an.cpu(), idx_n.cpu(), margin, "mean")
        assert torch.equal(first.cpu(), on_cpu)
        grad = torch.tensor(0.75, device=backend.device)
        back = _ops(backend)._triplet_loss_from_mined_backward(grad, d_ap, d_an, idx_n, margin, "mean")
        back_cpu = torch.ops.bdb_ext._triplet_loss_from_mined_backward(grad.cpu(), d_ap.cpu(), d_an.cpu(),
                                                                       idx_n.cpu(), margin, "mean")
        assert all(torch.equal(a.cpu(), b) for a, b in zip(back, back_cpu))


# --- bad inputs ------------------------------------------------------------------------------------------------


def test_bad_inputs_name_the_argument(backend):
    ops = _ops(backend)
    d_ap, d_an, idx_n = _mined(6, seed=6, dtype=torch.float32, device=backend.device)
    loss = ops.triplet_loss_from_mined
    cases = [
        ((d_ap.long(), d_an, idx_n, None, "mean"), r"d_ap must be float32, float64, float16 or bfloat16"),
        ((d_ap[None], d_an, idx_n, None, "mean"), r"d_ap must be a 1-D tensor"),
        ((d_ap, d_an[:5], idx_n, None, "mean"), r"d_an must have shape \(N,\) = \(6,\)"),
        ((d_ap, d_an.double(), idx_n, None, "mean"), r"d_an must have d_ap's dtype"),
        ((d_ap, d_an, idx_n[:4], None, "mean"), r"idx_n must have shape \(N,\) = \(6,\)"),
        ((d_ap, d_an, idx_n.int(), None, "mean"), r"idx_n must be int64"),
        ((d_ap, d_an, idx_n, -0.5, "mean"), r"margin must be a finite float >= 0"),
        ((d_ap, d_an, idx_n, math.nan, "mean"), r"margin must be a finite float >= 0"),
        ((d_ap, d_an, idx_n, None, "avg"), r"reduction must be \"mean\", \"sum\" or \"none\""),
    ]
    for args, message in cases:
        with pytest.raises(RuntimeError, match=message):
            loss(*args)
    backward = ops._triplet_loss_from_mined_backward
    scalar = torch.tensor(1.0, device=backend.device)
    with pytest.raises(RuntimeError, match=r"grad must be a 0-dim tensor for reduction \"mean\""):
        backward(torch.ones(6, device=backend.device), d_ap, d_an, idx_n, None, "mean")
    with pytest.raises(RuntimeError, match=r"grad must have shape \(N,\) = \(6,\) for reduction \"none\""):
        backward(scalar, d_ap, d_an, idx_n, None, "none")
    with pytest.raises(RuntimeError, match=r"grad must have d_ap's dtype"):
        backward(scalar.double(), d_ap, d_an, idx_n, None, "sum")
    with pytest.raises(RuntimeError, match=r"d_an must have d_ap's dtype"):
        backward(scalar, d_ap, d_an.double(), idx_n, None, "sum")


def test_second_derivative_through_the_loss_is_refused(backend):
    d_ap, d_an, idx_n = _mined(5, seed=7, device=backend.device)
    d_ap.requires_grad_()
    out = _ops(backend).triplet_loss_from_mined(d_ap, d_an, idx_n, None, "mean")
    (g,) = torch.autograd.grad(out, d_ap, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        g.sum().backward()


# --- launch count -----------------------------------------------------------------------------------------------


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:  # a view (detach of a saved tensor) launches nothing
            self.names.append(func._schema.name)
        return func(*args, **(kwargs or {}))


def test_loss_forward_and_backward_are_one_op_each(backend):
    # The loss adds exactly one op forward and one backward to the mining op's (the eager form ran about 20).
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(8)).to(backend.device).requires_grad_()
    labels = pk_labels(8, 4, backend.device)
    ns = backend.ops.namespace
    with _OpCounter() as counter:
        loss = backend.ops.batch_hard_triplet_loss(x, labels)
    forward = [n for n in counter.names if n.startswith(ns)]
    assert forward == [f"{ns}::batch_hard_mine", f"{ns}::triplet_loss_from_mined"]
    assert len(counter.names) == 2, counter.names
    with _OpCounter() as counter:
        torch.autograd.grad(loss, x)
    # The engine's unit gradient of the loss, then one op per Function: no zeros materialised for the
    # mined indices or for an unused output.
    assert counter.names == ["aten::ones_like", f"{ns}::_triplet_loss_from_mined_backward",
                             f"{ns}::_batch_hard_mine_backward"], counter.names


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_launch_shape_one_block_each_way_within_the_model(emulated_library, dtype, reduction):
    # The emulator's launch log: one single-block launch forward, one backward, and at the paper batch
    # (N = 128) both within benchmarks/perf_model.py's model of a 132-SM GPU (all their bytes in flight).
    import perf_model  # benchmarks/, put on sys.path above

    emu = torch.ops.bdb_ext_emu
    d_ap, d_an, idx_n = _mined(128, seed=9, dtype=dtype)
    grad = torch.ones(d_ap.shape if reduction == "none" else (), dtype=dtype)
    for run in (lambda: emu.triplet_loss_from_mined(d_ap, d_an, idx_n, None, reduction),
                lambda: emu._triplet_loss_from_mined_backward(grad, d_ap, d_an, idx_n, None, reduction)):
        emu._start_launch_recording(1)
        try:
            run()
        finally:
            log = emu._stop_launch_recording().splitlines()
        assert len(log) == 1, log
        kernel, grid, block = log[0].split("\t")
        assert grid == "1 1 1" and block == "256 1 1"
        launch = perf_model.Launch(kernel, (1, 1, 1), (256, 1, 1))
        for gpu in ("H100", "H200"):
            verdict = perf_model.check_parallelism(launch, {"N": 128, "D": 1536}, gpu)
            assert verdict.ok, verdict
