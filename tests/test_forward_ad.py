"""Forward-mode AD and torch.func: each op's jvp against the reference's, through torch.func.jvp and through
torch.autograd.forward_ad; torch.func.grad, vjp, jacrev, jacfwd and vmap; second derivatives refused clearly.

Before, the ops had no jvp: forward_ad returned no tangent, torch.func.jvp a zero one, and torch.func.grad
failed with torch's "must override setup_context". Every test here checks that the tangent is not zero.
"""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD

from bdb_ext import reference

DTYPE = torch.float64  # exact comparison with the reference's derivatives


def _randn(*shape, seed, device):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=DTYPE).to(device)


def _check_jvp(ours, ref, primals, tangents):
    """ours' and ref's jvp agree through both forward-AD front ends, and the tangent is not silently zero."""
    out, jvp_out = torch.func.jvp(ours, primals, tangents)
    ref_out, ref_jvp = torch.func.jvp(ref, primals, tangents)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(jvp_out, ref_jvp)
    assert jvp_out.abs().sum() > 0
    with fwAD.dual_level():
        dual_out = ours(*(fwAD.make_dual(p, t) for p, t in zip(primals, tangents)))
        tangent = fwAD.unpack_dual(dual_out).tangent
    assert tangent is not None
    torch.testing.assert_close(tangent, ref_jvp)


@pytest.mark.parametrize("channels_last", [False, True])
def test_batch_drop_block_jvp_is_the_same_rectangle(backend, channels_last):
    x, t = (_randn(3, 4, 6, 5, seed=s, device=backend.device) for s in (0, 1))
    if channels_last:
        x, t = x.contiguous(memory_format=torch.channels_last), t.contiguous(memory_format=torch.channels_last)
    rect = [1, 1, 3, 2]
    _check_jvp(lambda x: backend.ops.batch_drop_block(x, rect), lambda x: reference.batch_drop_block(x, rect),
               (x,), (t,))


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_drop_pool_jvp(backend, mode):
    x, t = (_randn(3, 4, 6, 5, seed=s, device=backend.device) for s in (2, 3))
    x[0, 0] = -x[0, 0].abs() - 1  # every kept value negative: the max is a dropped zero (argmax -1), tangent 0
    rect = [2, 0, 2, 5]
    _check_jvp(lambda x: backend.ops.drop_pool(x, rect, mode)[0], lambda x: reference.drop_pool(x, rect, mode),
               (x,), (t,))
    if mode == "max":
        _, tangent = torch.func.jvp(lambda x: backend.ops.drop_pool(x, rect, mode)[0], (x,), (t,))
        assert tangent[0, 0] == 0


@pytest.mark.parametrize("squared", [False, True])
def test_pairwise_distance_jvp(backend, squared):
    x, y, tx, ty = (_randn(n, 5, seed=s, device=backend.device) for n, s in ((6, 4), (4, 5), (6, 6), (4, 7)))
    _check_jvp(lambda x, y: backend.ops.pairwise_distance(x, y, squared),
               lambda x, y: reference.pairwise_distance(x, y, squared), (x, y), (tx, ty))


def test_pairwise_distance_self_jvp_is_zero_on_the_diagonal(backend):
    x, t = (_randn(5, 3, seed=s, device=backend.device) for s in (8, 9))
    _, tangent = torch.func.jvp(lambda x: backend.ops.pairwise_distance(x), (x,), (t,))
    _, expected = torch.func.jvp(lambda x: reference.pairwise_distance(x, x), (x,), (t,))
    off = ~torch.eye(5, dtype=torch.bool, device=backend.device)
    torch.testing.assert_close(tangent[off], expected[off])
    assert torch.equal(tangent.diagonal(), torch.zeros(5, dtype=DTYPE, device=backend.device))  # not NaN


def test_batch_hard_mine_jvp_goes_through_the_chosen_pairs(backend):
    # A singleton identity (no positive: d_ap 0) gets a zero d_ap tangent, as the reference.
    x, t = (_randn(9, 4, seed=s, device=backend.device) for s in (10, 11))
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3], device=backend.device)
    for k in (0, 1):
        _check_jvp(lambda x: backend.ops.batch_hard_mine(x, labels)[k],
                   lambda x: reference.batch_hard_mine(x, labels)[k], (x,), (t,))
    # The indices carry no tangent.
    with fwAD.dual_level():
        outputs = backend.ops.batch_hard_mine(fwAD.make_dual(x, t), labels)
        assert fwAD.unpack_dual(outputs[2]).tangent is None and fwAD.unpack_dual(outputs[3]).tangent is None


def test_batch_hard_mine_jvp_without_negatives_is_zero(backend):
    x, t = (_randn(4, 3, seed=s, device=backend.device) for s in (12, 13))
    labels = torch.zeros(4, dtype=torch.int64, device=backend.device)
    _, d_an_tangent = torch.func.jvp(lambda x: backend.ops.batch_hard_mine(x, labels)[1], (x,), (t,))
    assert torch.equal(d_an_tangent, torch.zeros_like(d_an_tangent))


@pytest.mark.parametrize("margin", [None, 0.3])
def test_triplet_loss_jvp_and_jacfwd_match_the_reference(backend, margin):
    x, t = (_randn(8, 6, seed=s, device=backend.device) for s in (14, 15))
    labels = torch.arange(8, device=backend.device) // 2
    _check_jvp(lambda x: backend.ops.batch_hard_triplet_loss(x, labels, margin),
               lambda x: reference.batch_hard_triplet_loss(x, labels, margin), (x,), (t,))
    torch.testing.assert_close(
        torch.func.jacfwd(lambda x: backend.ops.batch_hard_triplet_loss(x, labels, margin))(x),
        torch.func.jacrev(lambda x: reference.batch_hard_triplet_loss(x, labels, margin))(x),
    )


def test_func_grad_vjp_and_jacrev_match_autograd(backend):
    x = _randn(8, 5, seed=16, device=backend.device)
    labels = torch.arange(8, device=backend.device) // 2
    rect = [1, 0, 2, 4]
    maps = _randn(2, 3, 4, 4, seed=17, device=backend.device)
    for fn, arg in (
        (lambda x: backend.ops.batch_hard_triplet_loss(x, labels), x),
        (lambda x: backend.ops.pairwise_distance(x).sum(), x),
        (lambda m: backend.ops.drop_pool(m, rect, "max")[0].pow(2).sum(), maps),
        (lambda m: backend.ops.batch_drop_block(m, rect).pow(2).sum(), maps),
    ):
        leaf = arg.clone().requires_grad_()
        (expected,) = torch.autograd.grad(fn(leaf), leaf)
        torch.testing.assert_close(torch.func.grad(fn)(arg), expected)
        torch.testing.assert_close(torch.func.vjp(fn, arg)[1](torch.ones((), dtype=DTYPE, device=arg.device))[0],
                                   expected)
        torch.testing.assert_close(torch.func.jacrev(fn)(arg), expected)
        assert expected.abs().sum() > 0


def test_vmap_matches_a_loop(backend):
    maps = _randn(3, 2, 3, 5, 4, seed=18, device=backend.device)
    rect = [1, 1, 2, 2]
    for mode in ("max", "avg"):
        batched = torch.func.vmap(lambda m: backend.ops.drop_pool(m, rect, mode)[0])(maps)
        torch.testing.assert_close(batched, torch.stack([backend.ops.drop_pool(m, rect, mode)[0] for m in maps]))
    batched = torch.func.vmap(lambda m: backend.ops.batch_drop_block(m, rect))(maps)
    torch.testing.assert_close(batched, torch.stack([reference.batch_drop_block(m, rect) for m in maps]))
    emb = _randn(4, 6, 3, seed=19, device=backend.device)
    labels = torch.tensor([0, 0, 1, 1, 2, 2], device=backend.device)
    mined = torch.func.vmap(lambda e: backend.ops.batch_hard_mine(e, labels))(emb)
    for k, part in enumerate(mined):
        torch.testing.assert_close(part, torch.stack([backend.ops.batch_hard_mine(e, labels)[k] for e in emb]))


def test_per_sample_gradients_with_vmap_of_grad(backend):
    emb = _randn(3, 6, 4, seed=20, device=backend.device)
    labels = torch.tensor([0, 0, 1, 1, 2, 2], device=backend.device)
    loss = lambda e: backend.ops.batch_hard_triplet_loss(e, labels, 0.3)  # noqa: E731
    per_sample = torch.func.vmap(torch.func.grad(loss))(emb)
    expected = torch.stack([torch.func.grad(loss)(e) for e in emb])
    torch.testing.assert_close(per_sample, expected)
    assert per_sample.abs().sum() > 0


def test_second_derivatives_are_refused_clearly(backend):
    x = _randn(6, 3, seed=21, device=backend.device)
    labels = torch.tensor([0, 0, 1, 1, 2, 2], device=backend.device)
    loss = lambda x: backend.ops.batch_hard_triplet_loss(x, labels, 0.3)  # noqa: E731
    with pytest.raises(RuntimeError, match="double backward"):
        torch.func.hessian(loss)(x)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.func.grad(lambda x: torch.func.grad(loss)(x).sum())(x)
    leaf = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(loss(leaf), leaf, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        g.sum().backward()


def test_raw_ops_carry_tangents_and_refuse_torch_func_clearly(backend):
    ops = getattr(torch.ops, backend.ops.namespace)
    x, t = (_randn(2, 3, 4, 4, seed=s, device=backend.device) for s in (22, 23))
    rect = torch.tensor([1, 0, 2, 4], device=backend.device)
    with fwAD.dual_level():
        tangent = fwAD.unpack_dual(ops.batch_drop_block(fwAD.make_dual(x, t), rect)).tangent
    torch.testing.assert_close(tangent, reference.batch_drop_block(t, rect))
    with pytest.raises(RuntimeError, match=r"need the Python entry point bdb_ext.ops.drop_pool"):
        torch.func.grad(lambda x: ops.drop_pool(x, rect, "max")[0].sum())(x)
    with pytest.raises(RuntimeError, match=r"need the Python entry point bdb_ext.ops.batch_drop_block"):
        torch.func.jvp(lambda x: ops.batch_drop_block(x, rect), (x,), (t,))
