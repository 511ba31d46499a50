"""Reproducing the published runs: release presets, preset choice, the engine's protocols, the official checkpoint
through the CLI, the DataParallel-shard options in training, and the official random erasing / CARS transform."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bdb_ext.cli import build_parser, main
from bdb_ext.cli.config_args import resolve_preset
from bdb_ext.configs import load_preset, preset_names
from bdb_ext.data import Market1501, OfficialRandomErasing, build_transforms
from bdb_ext.engine import Trainer, config_from_dict, evaluate
from bdb_ext.engine.loaders import test_loader as make_test_loader
from bdb_ext.evaluation import ProtocolComparison, rank_metrics
from bdb_ext.models import BDBNet, GhostBatchNorm2d
from bdb_tiny import tiny_config, tiny_market
from official_bfe import BFE, official_features, randomize_


@pytest.fixture(scope="module")
def market_root(tmp_path_factory):
    return tiny_market(tmp_path_factory.mktemp("cache"))


# -- presets ----------------------------------------------------------------------------------------------------
def test_release_presets_cover_every_published_row():
    for dataset in ("market1501", "dukemtmc", "cuhk03-labeled", "cuhk03-detected", "inshop", "sop", "cub", "cars"):
        preset = load_preset(f"{dataset}-release")
        config = config_from_dict(preset)
        assert config.dataset == dataset and config.eval_protocol == "official"
        assert config.best_metric == ("rank-1" if config.recipe == "person" else "R@1")
        assert config.bn_group_size == 32 and config.rect_per_group
        if config.recipe == "metric":
            assert config.erasing_sampler == "official" and config.random_erasing
    market = config_from_dict(load_preset("market1501-release"))
    # 0.2 x 24 rows truncated by int(): 4 rows, as the official code behind the 95.3 model.
    assert (market.h_ratio, market.block_rounding) == (0.2, "floor")
    assert math.floor(market.h_ratio * market.height / 16) == 4
    assert load_preset("cars")["test_pad"] is False and load_preset("cars-release")["test_pad"] is False
    assert load_preset("inshop-release")["milestones"] == [100, 300]
    assert all(load_preset(name)["erasing_sampler"] == "official" for name in ("cub", "cars", "sop", "inshop"))


def _train_args(*argv: str):
    return build_parser().parse_args(["train", *argv])


def test_dataset_without_config_picks_its_preset_and_says_so(capsys):
    assert resolve_preset(_train_args("--dataset", "cub"), "market1501") == "cub"
    assert "--dataset cub without --config: using preset 'cub'" in capsys.readouterr().err
    assert resolve_preset(_train_args("--set", "dataset=cars"), "market1501") == "cars"
    assert resolve_preset(_train_args(), "market1501") == "market1501"
    assert resolve_preset(_train_args("--config", "market1501", "--dataset", "msmt17"), "market1501") == "market1501"
    with pytest.raises(ValueError, match="no preset is made for --dataset 'msmt17'; name the recipe with --config"):
        resolve_preset(_train_args("--dataset", "msmt17"), "market1501")
    with pytest.raises(ValueError, match="--config market1501 is a person preset but --dataset cub needs the metric"):
        resolve_preset(_train_args("--config", "market1501", "--dataset", "cub"), "market1501")
    with pytest.raises(ValueError, match="--config cub is a metric preset but --dataset dukemtmc needs the person"):
        resolve_preset(_train_args("--config", "cub", "--dataset", "dukemtmc"), "market1501")
    eval_args = build_parser().parse_args(["eval", "--official-checkpoint", "x", "--dataset", "dukemtmc"])
    assert resolve_preset(eval_args, "market1501-release", release=True) == "dukemtmc-release"


def test_protocol_flag_is_an_alias():
    args = build_parser().parse_args(["eval", "ckpt.pt", "--protocol", "both"])
    assert getattr(args, "field__eval_protocol") == "both"


# -- the engine's protocols -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return BDBNet(5, "resnet18", pretrained=False).eval()


def test_engine_official_protocol_is_flip_averaged_ap50(tiny_model, market_root, tmp_path):
    dataset = Market1501(market_root)
    config = tiny_config(tmp_path, data_root=str(market_root), eval_protocol="official")
    results = evaluate(tiny_model, dataset, config, torch.device("cpu"))
    # The oracle: the official evaluator's features (image and mirror averaged), then AP@50 metrics.
    feats = {}
    for split in ("query", "gallery"):
        batches = [(official_features(tiny_model, images, flip=True), pids, cams)
                   for images, pids, cams in make_test_loader(getattr(dataset, split), config)]
        feats[split] = [torch.cat(parts) for parts in zip(*batches)]
    (qf, qp, qc), (gf, gp, gc) = feats["query"], feats["gallery"]
    expected = rank_metrics(torch.cdist(qf, gf).square(), qp, gp, qc, gc, ap_cutoff=50)
    assert results.eval_protocol == "official" and results.flip is True and results.ap_cutoff == 50
    assert results.mAP == pytest.approx(expected.mAP, abs=1e-6)
    assert results.cmc == pytest.approx(list(expected.cmc), abs=1e-6)

    both = evaluate(tiny_model, dataset, tiny_config(tmp_path, data_root=str(market_root), eval_protocol="both"),
                    torch.device("cpu"))
    standard = evaluate(tiny_model, dataset, tiny_config(tmp_path, data_root=str(market_root)), torch.device("cpu"))
    assert isinstance(both, ProtocolComparison)
    assert both.official.as_dict() == results.as_dict() and both.standard.as_dict() == standard.as_dict()
    assert standard.flip is False and standard.ap_cutoff is None


# -- the official checkpoint through the CLI --------------------------------------------------------------------
def test_cli_evaluates_an_official_checkpoint(market_root, tmp_path, capsys):
    torch.manual_seed(0)
    official = randomize_(BFE(9, 1.0, 0.33), torch.Generator().manual_seed(4)).eval()
    path = tmp_path / "market_953.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in official.state_dict().items()}, "epoch": 400}, path)
    common = ["--data-root", str(market_root), "--height", "64", "--width", "32", "--device", "cpu",
              "--workers", "0", "--test-batch-size", "64"]
    assert main(["eval", "--official-checkpoint", str(path), *common, "--json", str(tmp_path / "r.json")]) == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert (data["eval_protocol"], data["flip"], data["ap_cutoff"], data["dataset"]) == (
        "official", True, 50, "market1501")
    assert "rank-16" in data and "Rank-8" in capsys.readouterr().out
    assert main(["eval", "--official-checkpoint", str(path), *common, "--protocol", "both"]) == 0
    assert "standard |  official" in capsys.readouterr().out
    assert main(["eval", *common]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["eval", "best.pt", "--config", "market1501", *common]) == 2
    assert "--config applies to --official-checkpoint only" in capsys.readouterr().err


# -- DataParallel-shard options in training ---------------------------------------------------------------------
def test_trainer_runs_with_ghost_bn_and_per_group_rectangles(market_root, tmp_path):
    config = tiny_config(tmp_path, data_root=str(market_root), bn_group_size=8, rect_per_group=True,
                         block_rounding="floor", epochs=1, max_iters_per_epoch=2, eval_every=1,
                         eval_protocol="both", best_metric="rank-1")
    trainer = Trainer(config, log=lambda message: None)
    assert any(isinstance(m, GhostBatchNorm2d) for m in trainer.model.modules())
    assert trainer.model.rect_group_size == 8 and trainer.model.rect_group_shard == (0, 1)
    output = trainer.model.train()(torch.randn(16, 3, 64, 32))
    assert output.rect.shape == (2, 4)
    results = trainer.fit()
    assert isinstance(results, ProtocolComparison) and trainer.best["metric"] == "rank-1"
    stored = torch.load(tmp_path / "best.pt", weights_only=True)
    assert stored["config"]["bn_group_size"] == 8 and stored["metrics"]["rank-1"] == results.official.rank(1)


def test_group_options_are_validated():
    with pytest.raises(ValueError, match="rect_per_group needs bn_group_size"):
        config_from_dict({"rect_per_group": True})
    with pytest.raises(ValueError, match=r"bn_group_size must be a positive divisor of batch_size \(128\)"):
        config_from_dict({"bn_group_size": 48})
    with pytest.raises(ValueError, match="contradict"):
        config_from_dict({"bn_group_size": 32, "sync_bn": True})
    with pytest.raises(ValueError, match="eval_protocol must be one of"):
        config_from_dict({"eval_protocol": "paper"})


# -- official random erasing and the CARS test transform --------------------------------------------------------
def test_official_random_erasing_samples_as_the_official_code():
    torch.manual_seed(0)
    erase = OfficialRandomErasing(p=1.0)
    aspects = []
    for _ in range(600):
        zero = (erase(torch.ones(3, 224, 224)) == 0).all(0)
        rows, cols = zero.any(1).sum().item(), zero.any(0).sum().item()
        assert zero.sum() == rows * cols  # one filled rectangle
        aspects.append(rows / cols)
    # Aspect uniform in (0.3, 3.33): half of the draws above the middle 1.82; torchvision's log-uniform: a quarter.
    above = sum(a > (0.3 + 1 / 0.3) / 2 for a in aspects) / len(aspects)
    assert 0.42 < above < 0.58
    # Up to 100 tries: on a 100 x 3 image few draws fit (w must be < 3), yet almost every image is erased.
    erased = sum(bool((erase(torch.ones(1, 100, 3)) == 0).any()) for _ in range(200)) / 200
    assert erased > 0.9
    half = OfficialRandomErasing(p=0.5)
    hits = sum(bool((half(torch.ones(3, 32, 32)) == 0).any()) for _ in range(400))
    assert 150 < hits < 250
    with pytest.raises(ValueError, match="min_aspect"):
        OfficialRandomErasing(min_aspect=2.0)


def test_metric_transforms_follow_the_config():
    names = [type(t).__name__ for t in build_transforms("metric", True, erasing_sampler="official").transforms]
    assert names[-1] == "OfficialRandomErasing"
    names = [type(t).__name__ for t in build_transforms("metric", True).transforms]
    assert names[-1] == "RandomErasing"
    cars = [type(t).__name__ for t in build_transforms("metric", False, dataset="cars", test_pad=False).transforms]
    assert cars == ["Resize", "ToTensor", "Normalize"]
    with pytest.raises(ValueError, match="erasing_sampler must be"):
        build_transforms("metric", True, erasing_sampler="numpy")
    assert "cars-release" in preset_names()
