"""Ghost BatchNorm and one rectangle per group: what 4-GPU nn.DataParallel computed, on one device.

The oracle is DataParallel's semantics written out on the CPU: the batch is scattered in order into equal shards,
each replica runs the module on its shard (BatchNorm with that shard's statistics, its own rectangle), the outputs
are gathered in order, and only replica 0 shares (and so updates) the wrapped module's buffers.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

from bdb_ext.models import BDBNet, GhostBatchNorm1d, GhostBatchNorm2d, convert_ghost_batchnorm


def _random_bn(kind: type, channels: int, momentum: float | None, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    bn = kind(channels, momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=g))
        bn.running_mean.copy_(torch.randn(channels, generator=g))
        bn.running_var.copy_(torch.rand(channels, generator=g) + 0.5)
    return bn


def _data_parallel_step(module: nn.Module, x: torch.Tensor, shards: int) -> torch.Tensor:
    """DataParallel's forward, CPU edition: replica 0 is ``module`` itself, the others are throw-away copies whose
    parameters are the same tensors (so gradients add up as DataParallel's reduce does)."""
    outputs = []
    for i, shard in enumerate(x.chunk(shards)):
        replica = module if i == 0 else _replica(module)
        outputs.append(replica(shard))
    return torch.cat(outputs)


def _replica(module: nn.Module) -> nn.Module:
    replica = copy.deepcopy(module)
    # Same parameters (gradients accumulate into the originals), copied buffers (their updates are lost).
    for (name, _), (_, original) in zip(replica.named_parameters(), module.named_parameters()):
        owner, _, leaf = name.rpartition(".")
        setattr(replica.get_submodule(owner) if owner else replica, leaf, original)
    return replica


@pytest.mark.parametrize("kind, shape", [(nn.BatchNorm2d, (3, 5, 4)), (nn.BatchNorm1d, (6,)),
                                         (nn.BatchNorm1d, (6, 7))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_ghost_bn_equals_per_shard_bn(kind, shape, momentum):
    channels = shape[0]
    plain = _random_bn(kind, channels, momentum, seed=0)
    ghost = convert_ghost_batchnorm(copy.deepcopy(plain), 4)
    assert isinstance(ghost, GhostBatchNorm2d if kind is nn.BatchNorm2d else GhostBatchNorm1d)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = (torch.randn(16, *shape, generator=g) * (step + 1) + step).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        out = ghost(x)
        expected = _data_parallel_step(plain, x_ref, shards=4)
        torch.testing.assert_close(out, expected)
        grad = torch.randn(out.shape, generator=g)
        out.backward(grad)
        expected.backward(grad)
        torch.testing.assert_close(x.grad, x_ref.grad)
        torch.testing.assert_close(ghost.weight.grad, plain.weight.grad)
        torch.testing.assert_close(ghost.bias.grad, plain.bias.grad)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(ghost, name), getattr(plain, name), msg=name)
    # Running statistics came from the first shard only: a plain BN over the whole batch differs.
    assert ghost.num_batches_tracked.item() == 3
    whole = _random_bn(kind, channels, momentum, seed=0)
    whole(x.detach())
    assert not torch.allclose(whole.running_mean, ghost.running_mean)


def test_ghost_bn_eval_is_plain_bn_and_checks_the_batch():
    plain = _random_bn(nn.BatchNorm2d, 3, 0.1, seed=2).eval()
    ghost = convert_ghost_batchnorm(copy.deepcopy(plain), 4).eval()
    x = torch.randn(6, 3, 2, 2)  # not a multiple of 4: fine in eval
    torch.testing.assert_close(ghost(x), plain(x))
    ghost.train()
    with pytest.raises(ValueError, match=r"batch \(6\) must be a multiple of group_size \(4\)"):
        ghost(x)
    with pytest.raises(ValueError, match="group_size must be a positive int"):
        GhostBatchNorm2d(3, 0)
    with pytest.raises(TypeError, match="group_size must be a positive int"):
        convert_ghost_batchnorm(plain, 2.0)


def _tiny(seed: int = 0, **options) -> BDBNet:
    torch.manual_seed(seed)
    return BDBNet(5, "resnet18", pretrained=False, **options)


def test_bdbnet_options_keep_the_state_dict_layout():
    plain, grouped = _tiny(), _tiny(bn_group_size=4, rect_group_size=4)
    assert plain.state_dict().keys() == grouped.state_dict().keys()
    grouped.load_state_dict(plain.state_dict())
    bns = [m for m in grouped.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(m, (GhostBatchNorm1d, GhostBatchNorm2d)) for m in bns)
    assert "bn_group_size=4" in repr(grouped) and "rect_group_size=4" in repr(grouped)


@pytest.mark.parametrize("fused", [True, False])
def test_grouped_bdbnet_equals_data_parallel_replicas(fused):
    """bn_group_size = rect_group_size = 4 on a batch of 12 == 3 DataParallel replicas of the plain model, each on
    4 images with its own rectangle: features, logits, parameter gradients and running statistics."""
    plain = _tiny(fused=fused).train()
    grouped = _tiny(fused=fused, bn_group_size=4, rect_group_size=4).train()
    grouped.load_state_dict(plain.state_dict())
    images = torch.randn(12, 3, 64, 32, generator=torch.Generator().manual_seed(3))
    rects = torch.tensor([[0, 0, 1, 2], [3, 0, 1, 2], [1, 0, 1, 2]])  # 4x2 maps: one row each

    out = grouped(images, rect=rects)
    replicas = [plain] + [_replica(plain) for _ in range(2)]
    parts = [replica(chunk, rect=r) for replica, chunk, r in zip(replicas, images.chunk(3), rects)]
    for field in ("global_feature", "bdb_feature", "global_logits", "bdb_logits"):
        torch.testing.assert_close(getattr(out, field), torch.cat([getattr(p, field) for p in parts]), msg=field)
    loss = sum((t.square().sum() for t in out[:4]))
    loss.backward()
    sum((t.square().sum() for p in parts for t in p[:4])).backward()
    grads = dict(plain.named_parameters())
    for name, param in grouped.named_parameters():
        # Same arithmetic summed in a different order (one weight gradient over 12 samples vs three over 4);
        # biases followed by BatchNorm have a zero gradient up to that rounding.
        expected = grads[name].grad
        torch.testing.assert_close(param.grad, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()) + 1e-4,
                                   msg=name)
    buffers = dict(plain.named_buffers())
    for name, buffer in grouped.named_buffers():
        torch.testing.assert_close(buffer, buffers[name], msg=name)


def test_grouped_rectangles_are_drawn_per_group_and_per_shard():
    model = _tiny(rect_group_size=4).train()
    bdb_map = torch.empty(12, 1, 24, 8)
    g = torch.Generator().manual_seed(5)
    model.drop_pool.generator = g
    rects = model.draw_rect(bdb_map)
    assert rects.shape == (3, 4) and (rects[:, 2] == 8).all() and (rects[:, 3] == 8).all()
    # Two processes drawing in lock-step take consecutive slices of one sequence: 2 x 3 distinct groups.
    sequences = []
    for rank in range(2):
        g.manual_seed(7)
        model.rect_group_shard = (rank, 2)
        sequences.append(model.draw_rect(bdb_map))
    g.manual_seed(7)
    model.rect_group_shard = (0, 1)
    whole = model.draw_rect(torch.empty(24, 1, 24, 8))
    torch.testing.assert_close(torch.cat(sequences), whole)
    with pytest.raises(ValueError, match=r"batch \(10\) must be a multiple of rect_group_size \(4\)"):
        model.draw_rect(torch.empty(10, 1, 24, 8))
    with pytest.raises(ValueError, match="rect must have shape"):
        model(torch.randn(4, 3, 64, 32), rect=torch.zeros(2, 3, dtype=torch.long))


def test_floor_rounding_is_the_official_int():
    """The 95.3 Market model: BatchDrop(h_ratio=0.2) with rh = int(0.2 * 24) = 4 rows, rw = int(1.0 * 8) = 8."""
    floor, rounded = _tiny(h_ratio=0.2, block_rounding="floor"), _tiny(h_ratio=0.2)
    bdb_map = torch.empty(2, 1, 24, 8)
    assert floor.draw_rect(bdb_map)[2:].tolist() == [4, 8]
    assert rounded.draw_rect(bdb_map)[2:].tolist() == [5, 8]
    for ratio in (0.33, 0.5, 0.25, 0.7, 1.0):
        floor.drop_pool.h_ratio = ratio
        for height in (6, 7, 14, 24):
            assert int(floor.draw_rect(torch.empty(1, 1, height, 8))[2]) == int(ratio * height), (ratio, height)
    with pytest.raises(ValueError, match="block_rounding must be"):
        _tiny(block_rounding="ceil")


def test_grouped_bdbnet_compiles_fullgraph_without_recompiling():
    """The fused op per group and the ghost BatchNorm in one graph; the rectangles are tensors, so new ones do not
    recompile (the eager reference path is plain torch and compiles as any model does)."""
    torch._dynamo.reset()
    fused = True
    model = _tiny(fused=fused, bn_group_size=4, rect_group_size=4).train()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    images = torch.randn(8, 3, 64, 32)
    eager = _tiny(fused=fused, bn_group_size=4, rect_group_size=4).train()
    eager.load_state_dict(model.state_dict())
    for _ in range(4):
        out = compiled(images)  # rectangles drawn inside the graph, a different pair each call
        sum(t.square().sum() for t in out[:4]).backward()
        reference = eager(images, rect=out.rect)
        torch.testing.assert_close(out.bdb_feature, reference.bdb_feature)
    assert counter.frame_count == 1
