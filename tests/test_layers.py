"""BatchDropBlock and BatchDropPool: the layer semantics of the paper."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

import bdb_ext
from bdb_ext import reference
from bdb_ext.layers import draw_drop_rect, drop_block_size


def test_block_size_rounds_like_the_reference_code():
    assert drop_block_size(24, 8, 0.33, 1.0) == (8, 8)
    assert drop_block_size(24, 8, 0.3, 1.0) == (7, 8)
    assert drop_block_size(16, 16, 0.5, 0.5) == (8, 8)


def test_drop_block_zeroes_one_rectangle_shared_by_the_whole_batch(device):
    layer = bdb_ext.BatchDropBlock(h_ratio=0.33, w_ratio=1.0).train()
    x = torch.rand(6, 16, 24, 8, device=device) + 1.0  # strictly positive: zeros are dropped positions
    y = layer(x)
    zero = y == 0
    assert torch.equal(zero, zero[:1, :1].expand_as(zero))  # same region for every n and c
    rows = zero[0, 0].all(dim=1)
    assert rows.sum() == 8 and zero[0, 0].sum() == 8 * 8
    top = int(rows.nonzero()[0])
    assert torch.equal(rows.nonzero().flatten().cpu(), torch.arange(top, top + 8))
    torch.testing.assert_close(y, reference.batch_drop_block(x, [top, 0, 8, 8]), rtol=0, atol=0)


def test_rectangles_cover_every_allowed_position(device):
    g = torch.Generator(device=device).manual_seed(0)
    tops = {int(draw_drop_rect(24, 8, 0.33, 1.0, device, g)[0]) for _ in range(400)}
    assert tops == set(range(24 - 8 + 1))


def test_eval_mode_is_identity_and_plain_pooling(device):
    x = torch.randn(3, 4, 6, 5, device=device)
    assert bdb_ext.BatchDropBlock().eval()(x) is x
    torch.testing.assert_close(bdb_ext.BatchDropPool(mode="max").eval()(x), F.adaptive_max_pool2d(x, 1).flatten(1))
    torch.testing.assert_close(bdb_ext.BatchDropPool(mode="avg").eval()(x), x.mean(dim=(2, 3)))


def test_generator_makes_rectangles_reproducible_and_python_random_is_untouched(device):
    x = torch.randn(2, 3, 24, 8, device=device)
    state = random.getstate()
    outs = []
    for _ in range(2):
        g = torch.Generator(device=device).manual_seed(1234)
        layer = bdb_ext.BatchDropPool(0.33, 1.0, generator=g).train()
        outs.append([layer(x) for _ in range(5)])
    assert all(torch.equal(a, b) for a, b in zip(*outs))
    assert random.getstate() == state


def test_drop_pool_layer_equals_drop_then_pool(device):
    x = torch.randn(4, 8, 24, 8, device=device, requires_grad=True)
    layer = bdb_ext.BatchDropPool(0.33, 1.0, generator=torch.Generator(device=device).manual_seed(5)).train()
    rect = layer.draw_rect(x)
    out = layer(x, rect)
    torch.testing.assert_close(out, reference.drop_pool(x, rect, "max"), rtol=0, atol=0)


def test_repr_names_the_settings():
    assert repr(bdb_ext.BatchDropBlock(0.33, 1.0)) == "BatchDropBlock(h_ratio=0.33, w_ratio=1.0)"
    assert repr(bdb_ext.BatchDropPool(0.5, 0.5, mode="avg")) == "BatchDropPool(h_ratio=0.5, w_ratio=0.5, mode='avg')"
