"""The bdb-ext command line: help, train, eval, export (TorchScript, ONNX) and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from bdb_ext.cli import main
from bdb_ext.engine import model_from_checkpoint
from bdb_tiny import tiny_market

TINY_FLAGS = ["--backbone", "resnet18", "--pretrained", "false", "--height", "64", "--width", "32",
              "--batch-size", "16", "--workers", "0", "--epochs", "1", "--device", "cpu", "--progress", "false",
              "--set", "warmup_epochs=0", "--set", "milestones="]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tiny_market(tmp_path_factory.mktemp("cache"))
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--config", "market1501", "--data-root", str(root), "--output-dir", str(out),
                 *TINY_FLAGS]) == 0
    return root, out


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "bdb_ext", "train", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    assert "--config PRESET" in result.stdout and "market1501" in result.stdout and "--h-ratio" in result.stdout


def test_train_writes_checkpoints_and_logs(trained):
    _, out = trained
    assert {"last.pt", "best.pt", "metrics.jsonl", "metrics.csv", "config.json"} <= {p.name for p in out.iterdir()}
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"] == "resnet18" and config["milestones"] == [] and config["h_ratio"] == 0.33


def test_eval_reports_metrics(trained, tmp_path):
    _, out = trained
    report = tmp_path / "m.json"
    assert main(["eval", str(out / "best.pt"), "--json", str(report), "--workers", "0"]) == 0
    metrics = json.loads(report.read_text())
    assert 0 <= metrics["mAP"] <= 1 and "rank-1" in metrics and "mINP" in metrics


def _reference_features(checkpoint):
    model, _, _ = model_from_checkpoint(checkpoint)
    images = torch.randn(3, 3, 64, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return images, model.eval()(images)


def test_export_torchscript_gives_the_same_features(trained, tmp_path):
    _, out = trained
    path = tmp_path / "bdb.pt"
    assert main(["export", str(out / "best.pt"), "--format", "torchscript", "-o", str(path)]) == 0
    images, expected = _reference_features(out / "best.pt")
    loaded = torch.jit.load(str(path))
    torch.testing.assert_close(loaded(images), expected, rtol=1e-4, atol=1e-4)


# onnx, onnxscript and onnxruntime are in the test extra: a missing one fails here, it does not skip.
def test_export_onnx_gives_the_same_features(trained, tmp_path):
    import onnxruntime

    _, out = trained
    path = tmp_path / "bdb.onnx"
    assert main(["export", str(out / "best.pt"), "--format", "onnx", "-o", str(path)]) == 0
    images, expected = _reference_features(out / "best.pt")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (features,) = session.run(None, {"images": images.numpy()})
    torch.testing.assert_close(torch.from_numpy(features), expected, rtol=1e-3, atol=1e-3)


def test_bad_input_is_a_one_line_error(capsys, tmp_path):
    assert main(["train", "--set", "epochz=3"]) == 2
    assert "unknown config field 'epochz'" in capsys.readouterr().err
    assert main(["train", "--epochs", "many"]) == 2
    assert "epochs: expected int" in capsys.readouterr().err
    assert main(["train", "--data-root", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--config", "no-such-preset"])
