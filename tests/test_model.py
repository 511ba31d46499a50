"""BDBNet: shapes, feature sizes, stride, init, pretrained loading, fused vs reference, and errors."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision

from bdb_ext.models import BDBNet, BDBOutput, build_trunk, pretrained_weights_path


@pytest.fixture(scope="module")
def tiny_model() -> BDBNet:
    torch.manual_seed(0)
    return BDBNet(5, "resnet18", pretrained=False)


def test_training_output_shapes(tiny_model):
    tiny_model.train()
    out = tiny_model(torch.randn(4, 3, 64, 32))
    assert isinstance(out, BDBOutput)
    assert out.global_feature.shape == (4, 512) and out.bdb_feature.shape == (4, 1024)
    assert out.global_logits.shape == (4, 5) and out.bdb_logits.shape == (4, 5)
    top, left, rows, cols = out.rect.tolist()
    # 64x32 input, stride 16 with the last stride 1 -> a 4x2 map; 0.33 x 4 rounds to 1 row, all columns.
    assert (rows, cols, left) == (1, 2, 0) and 0 <= top <= 3


def test_eval_feature_is_both_branches(tiny_model):
    tiny_model.eval()
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        feature = tiny_model(x)
        _, bdb_map = tiny_model.feature_maps(x)
    assert feature.shape == (3, 1536) and tiny_model.feature_dim == 1536
    expected_bdb = tiny_model.bdb_reduction(bdb_map.amax(dim=(2, 3)))
    torch.testing.assert_close(feature[:, 512:], expected_bdb)


@pytest.mark.parametrize("backbone, channels", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_trunk_last_stride_one(backbone, channels):
    trunk = build_trunk(backbone, pretrained=False).eval()
    with torch.no_grad():
        assert trunk(torch.randn(1, 3, 96, 32)).shape == (1, channels, 6, 2)


def test_resnet50_eval_feature_dim():
    model = BDBNet(7, "resnet50", pretrained=False).eval()
    assert model.bdb_block.conv1.in_channels == 2048 and model.bdb_block.conv3.out_channels == 2048
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 32)).shape == (2, 1536)


def test_small_backbone_bottleneck_maps_512_to_512(tiny_model):
    block = tiny_model.bdb_block
    assert (block.conv1.in_channels, block.conv1.out_channels, block.conv3.out_channels) == (512, 128, 512)
    assert tiny_model.bdb_reduction[0].in_features == 512


def test_head_init_follows_reference():
    torch.manual_seed(1)
    model = BDBNet(100, "resnet18", pretrained=False)
    assert torch.count_nonzero(model.global_classifier.bias) == 0
    assert torch.count_nonzero(model.global_reduction[0].bias) == 0
    bn = model.bdb_reduction[1].weight
    assert abs(bn.mean().item() - 1) < 0.01 and 0.01 < bn.std().item() < 0.03
    # Kaiming normal, fan_out for Linear: std sqrt(2 / out_features).
    std = model.bdb_classifier.weight.std().item()
    assert abs(std - (2 / 100) ** 0.5) < 0.02


def _params_grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_fused_and_reference_paths_agree():
    torch.manual_seed(2)
    fused = BDBNet(4, "resnet18", pretrained=False, fused=True).train()
    reference = copy.deepcopy(fused)
    reference.fused = False
    x = torch.randn(4, 3, 64, 32)
    for rect in ([1, 0, 1, 2], [2, 1, 2, 1]):  # whole rows; a block not touching the left edge
        rect = torch.tensor(rect)
        outputs = []
        for model in (fused, reference):
            model.zero_grad()
            out = model(x, rect)
            loss = sum((t * torch.linspace(-1, 1, t.shape[1])).sum() for t in out[:4])
            loss.backward()
            outputs.append((out, _params_grads(model)))
        (out_f, grads_f), (out_r, grads_r) = outputs
        assert torch.equal(out_f.rect, rect) and torch.equal(out_r.rect, rect)
        for a, b in zip(out_f[:4], out_r[:4]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert grads_f.keys() == grads_r.keys() and len(grads_f) == len(list(fused.parameters()))
        for name in grads_f:
            torch.testing.assert_close(grads_f[name], grads_r[name], rtol=1e-4, atol=1e-5, msg=name)


def test_drawn_rectangle_is_reproducible_with_a_generator():
    model = BDBNet(3, "resnet18", pretrained=False, generator=torch.Generator().manual_seed(5)).train()
    x = torch.randn(2, 3, 96, 32)  # a 6x2 map: 2 of 6 rows dropped, 5 possible tops
    with torch.no_grad():
        first = [model(x).rect.tolist() for _ in range(4)]
        model.drop_pool.generator.manual_seed(5)
        assert [model(x).rect.tolist() for _ in range(4)] == first


def test_pretrained_missing_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not download"):
        BDBNet(3, "resnet18", pretrained=True)
    assert str(pretrained_weights_path("resnet18")).startswith(str(tmp_path))


def test_pretrained_from_cache_and_from_path(monkeypatch, tmp_path):
    torch.manual_seed(3)
    source = torchvision.models.resnet18()
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    model = BDBNet(3, "resnet18", pretrained=path)
    torch.testing.assert_close(model.trunk[0].weight, source.conv1.weight)
    torch.testing.assert_close(model.trunk[7][1].conv2.weight, source.layer4[1].conv2.weight)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = pretrained_weights_path("resnet18")
    cached.parent.mkdir(parents=True)
    torch.save(source.state_dict(), cached)
    torch.testing.assert_close(BDBNet(3, "resnet18").trunk[4][0].conv1.weight, source.layer1[0].conv1.weight)


def test_bad_arguments():
    with pytest.raises(ValueError, match="backbone"):
        BDBNet(3, "vgg16", pretrained=False)
    with pytest.raises(ValueError, match="num_classes"):
        BDBNet(0, "resnet18", pretrained=False)
    with pytest.raises(TypeError, match="num_classes"):
        BDBNet(3.0, "resnet18", pretrained=False)
    with pytest.raises(ValueError, match="h_ratio"):
        BDBNet(3, "resnet18", pretrained=False, h_ratio=1.5)
    with pytest.raises(FileNotFoundError, match="pretrained"):
        BDBNet(3, "resnet18", pretrained="/no/such/file.pth")
    model = BDBNet(3, "resnet18", pretrained=False)
    with pytest.raises(ValueError, match="images"):
        model(torch.randn(2, 1, 64, 32))
