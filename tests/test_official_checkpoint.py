"""load_official_checkpoint: the official release's checkpoint layout gives the official 1536-d test features."""

from __future__ import annotations

import random

import pytest
import torch

from bdb_ext.models import BDBNet, load_official_checkpoint, official_to_bdbnet_state_dict
from official_bfe import BFE, official_features, randomize_

NUM_CLASSES = 11


@pytest.fixture(scope="module")
def official() -> BFE:
    torch.manual_seed(0)
    return randomize_(BFE(NUM_CLASSES, 1.0, 0.33), torch.Generator().manual_seed(1)).eval()


@pytest.fixture(scope="module")
def saved(official, tmp_path_factory) -> dict[str, object]:
    """The official model saved as main_reid.py saves it (bare, from model.module) and from the DataParallel
    wrapper (every key prefixed with ``module.``)."""
    folder = tmp_path_factory.mktemp("official")
    state = official.state_dict()
    paths = {"bare": folder / "checkpoint_ep390.pth.tar", "module": folder / "model_best.pth.tar"}
    torch.save({"state_dict": state, "epoch": 390}, paths["bare"])
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 390}, paths["module"])
    return paths


@pytest.mark.parametrize("layout", ["bare", "module"])
def test_same_test_features_as_the_official_model(official, saved, layout):
    model = load_official_checkpoint(saved[layout])
    assert isinstance(model, BDBNet) and not model.training
    assert model.num_classes == NUM_CLASSES and model.official_epoch == 390
    images = torch.randn(3, 3, 96, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model(images)
    expected = official_features(official, images, flip=False)
    assert ours.shape == expected.shape == (3, 1536)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    # And the flip-averaged feature of the published evaluations.
    with torch.no_grad():
        ours_flip = (model(images) + model(images.flip(-1))) / 2
    torch.testing.assert_close(ours_flip, official_features(official, images, flip=True), rtol=1e-5, atol=1e-5)


def test_same_training_features_for_the_same_rectangle(official, saved, monkeypatch):
    """Training mode too: with the official rectangle (random.randint patched) both give the same features and
    logits, so the mapping also covers the classifiers and the drop sits where the official one does."""
    model = load_official_checkpoint(saved["bare"]).train()
    reference = BFE(NUM_CLASSES, 1.0, 0.33)
    reference.load_state_dict(official.state_dict())
    reference.train()
    images = torch.randn(4, 3, 128, 64, generator=torch.Generator().manual_seed(3))  # an 8x4 map
    draws = iter([2, 0])  # top 2, left 0 (whole rows: round(0.33 * 8) = 3 rows, 4 of 4 columns)
    monkeypatch.setattr(random, "randint", lambda a, b: next(draws))
    with torch.no_grad():
        triplet, softmax = reference(images)
        out = model(images, rect=torch.tensor([2, 0, 3, 4]))
    torch.testing.assert_close(out.global_feature, triplet[0])
    torch.testing.assert_close(out.bdb_feature, triplet[1])
    torch.testing.assert_close(out.global_logits, softmax[0])
    torch.testing.assert_close(out.bdb_logits, softmax[1])


def test_missing_num_batches_tracked_is_accepted(official, tmp_path):
    """PyTorch 0.4.0 saved BatchNorm without num_batches_tracked; that buffer does not change eval outputs."""
    state = {k: v for k, v in official.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state, "epoch": 1}, tmp_path / "old.pth.tar")
    model = load_official_checkpoint(tmp_path / "old.pth.tar")
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images), official_features(official, images, flip=False))


def test_foreign_state_dicts_are_refused(official, tmp_path):
    bdbnet = BDBNet(NUM_CLASSES, "resnet50", pretrained=False)
    torch.save({"state_dict": bdbnet.state_dict(), "epoch": 3}, tmp_path / "ours.pt")
    with pytest.raises(ValueError, match=r"not an official BDB .*'bdb_block\.bn1\.bias'"):
        load_official_checkpoint(tmp_path / "ours.pt")

    state = official.state_dict()
    incomplete = {k: v for k, v in state.items() if not k.startswith("res_part2.conv3")}
    torch.save({"state_dict": incomplete}, tmp_path / "incomplete.pt")
    with pytest.raises(ValueError, match=r"incomplete: 1 keys .* \['res_part2\.conv3\.weight'\]"):
        load_official_checkpoint(tmp_path / "incomplete.pt")

    extra = dict(state, **{"res_part.3.conv1.weight": torch.zeros(1)})
    torch.save({"state_dict": extra}, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match=r"keys that ResNet-50 BDBNet does not have: \['res_part\.3\.conv1\.weight'\]"):
        load_official_checkpoint(tmp_path / "extra.pt")

    no_classifier = {k: v for k, v in state.items() if not k.startswith("softmax.")}
    with pytest.raises(ValueError, match="softmax.weight are needed"):
        official_to_bdbnet_state_dict(no_classifier)

    mixed = dict(state, **{"module.softmax.bias": state["softmax.bias"]})  # half-prefixed: not one model
    with pytest.raises(ValueError, match=r"module\.softmax\.bias"):
        official_to_bdbnet_state_dict(mixed)

    torch.save({"epoch": 3, "state_dict": [1, 2]}, tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        load_official_checkpoint(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_official_checkpoint(tmp_path / "absent.pth.tar")


def test_pickled_code_is_not_run(tmp_path):
    """weights_only=True: a checkpoint that needs arbitrary classes is refused with a clear error."""
    torch.save({"state_dict": {}, "epoch": 1, "opt": _Opaque()}, tmp_path / "pickle.pt")
    with pytest.raises(ValueError, match="weights-only"):
        load_official_checkpoint(tmp_path / "pickle.pt")


class _Opaque:
    pass
