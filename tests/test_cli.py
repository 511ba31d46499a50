"""The bdb-ext command line: help, train, eval, export (TorchScript, ONNX) and clear errors."""

from __future__ import annotations

import json
import re
import shutil
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


def _one_line_error(capsys, command: str) -> str:
    """The command's stderr, checked to be exactly one line in the command-line error form."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"bdb-ext {command}: error: "), err
    return err


@pytest.mark.parametrize(("flags", "message"), [
    (["--device", "foo"], "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'foo'"),
    (["--seed", "-1"], r"seed must be in \[0, 2\*\*63\), got -1"),  # used to fail only at the first epoch
    (["--set", "lr=inf"], r"lr must be a finite number in \(0, inf\), got inf"),  # used to train to NaN
    (["--set", "lr=nan"], r"lr must be a finite number"),
    (["--label-smoothing", "1.5"], r"label_smoothing must be a finite number in \[0, 1\)"),
])
def test_bad_settings_are_refused_before_any_work(capsys, tmp_path, flags, message):
    # The data root does not exist: the settings are refused before anything looks at it.
    assert main(["train", "--data-root", str(tmp_path / "missing"), *flags]) == 2
    assert re.search(message, _one_line_error(capsys, "train"))


def test_unwritable_output_dir_is_refused_before_the_data_is_read(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for output_dir in (blocker, blocker / "sub"):
        assert main(["train", "--data-root", str(tmp_path / "missing"), "--output-dir", str(output_dir)]) == 2
        err = _one_line_error(capsys, "train")
        assert "output_dir" in err and str(blocker) in err and "missing" not in err.split(str(blocker))[0]


@pytest.mark.parametrize("damage", ["folder", "empty", "truncated", "text", "random bytes", "missing"])
def test_eval_of_a_bad_checkpoint_is_one_line(capsys, trained, tmp_path, damage):
    _, out = trained
    path = tmp_path / "ckpt.pt"
    good = (out / "best.pt").read_bytes()
    if damage == "folder":
        path = out
    elif damage != "missing":
        path.write_bytes({"empty": b"", "truncated": good[: len(good) // 2], "text": b"hello",
                          "random bytes": bytes(range(256)) * 8}[damage])
    assert main(["eval", str(path)]) == 2
    err = _one_line_error(capsys, "eval")
    assert str(path) in err
    expected = {"folder": "is a folder", "missing": "does not exist", "empty": "is an empty file"}
    assert expected.get(damage, "corrupt") in err


@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_bad_json_path_is_refused_before_evaluating(capsys, trained, tmp_path, monkeypatch, where):
    import bdb_ext.engine

    def must_not_run(*args, **kwargs):
        raise AssertionError("the evaluation ran before the --json path was checked")

    monkeypatch.setattr(bdb_ext.engine, "evaluate", must_not_run)
    _, out = trained
    (tmp_path / "file").write_text("")
    report = tmp_path if where == "folder" else tmp_path / "file" / "m.json"
    assert main(["eval", str(out / "best.pt"), "--json", str(report)]) == 2
    assert "--json" in _one_line_error(capsys, "eval")


def test_a_corrupt_gallery_image_in_a_worker_is_one_line_naming_it(capsys, trained, tmp_path):
    root, out = trained
    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    victim = sorted((copy / "bounding_box_test").glob("0*.jpg"))[-1]  # not a junk image (-1_...), those are skipped
    victim.write_bytes(victim.read_bytes()[:40])
    assert main(["eval", str(out / "best.pt"), "--data-root", str(copy), "--workers", "1"]) == 2
    err = _one_line_error(capsys, "eval")
    assert f"cannot read image '{victim}'" in err


def test_internal_errors_keep_their_traceback(monkeypatch):
    import bdb_ext.cli.train_command

    def bug(args):
        raise RuntimeError("an internal bug")

    monkeypatch.setattr(bdb_ext.cli.train_command, "run", bug)
    with pytest.raises(RuntimeError, match="an internal bug"):
        main(["train"])


def test_exit_status_and_stderr_of_the_real_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bdb_ext", "eval", str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"bdb-ext eval: error: checkpoint '{tmp_path}' is a folder; pass a checkpoint file in it, such as "
        f"'{tmp_path / 'best.pt'}'"]
