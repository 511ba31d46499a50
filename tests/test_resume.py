"""Resuming a run: the saved config is the base, a changed setting applies (lr and schedule included) or is refused
with its name, config.json and the checkpoints hold the config in force, best.pt is refused, --resume auto."""

from __future__ import annotations

import json

import pytest

from bdb_ext.cli import main
from bdb_ext.data import Market1501
from bdb_ext.engine import Trainer, load_checkpoint
from bdb_tiny import tiny_config, tiny_market

TINY_FLAGS = ["--backbone", "resnet18", "--pretrained", "false", "--height", "64", "--width", "32",
              "--batch-size", "16", "--workers", "0", "--epochs", "2", "--device", "cpu", "--progress", "false",
              "--set", "warmup_epochs=0", "--set", "milestones="]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tiny_market(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def market(root):
    return Market1501(root)


@pytest.fixture(scope="module")
def one_step(tmp_path_factory, root, market):
    """A run of 2 epochs (2 steps each) stopped after step 3, with its last.pt and best.pt (of epoch 1)."""
    out = tmp_path_factory.mktemp("run")
    trainer = Trainer(tiny_config(out, epochs=2, eval_every=1, data_root=str(root)), market, log=lambda m: None)
    trainer.fit(max_steps=2)  # epoch 1 and its evaluation: best.pt
    trainer.fit(max_steps=3)  # one step into epoch 2
    return out


def _copy_run(source, target):
    target.mkdir(parents=True, exist_ok=True)
    for name in ("last.pt", "best.pt"):
        (target / name).write_bytes((source / name).read_bytes())
    return target


def _records(out, kind):
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def test_a_changed_lr_and_schedule_apply_from_the_resumed_step(one_step, tmp_path, root, market):
    out = _copy_run(one_step, tmp_path / "run")
    messages: list[str] = []
    # The saved run: constant lr 1e-3. Resumed with lr 5e-4 and a milestone at epoch 2 (x0.1 from its end).
    config = tiny_config(out, epochs=3, eval_every=1, lr=5e-4, milestones=[3], data_root=str(root))
    trainer = Trainer(config, market, log=messages.append)
    trainer.resume(out / "last.pt")
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [5e-4]
    assert any("settings changed on resume" in m and "lr 0.001 -> 0.0005" in m and "milestones [] -> [3]" in m
               and "epochs 2 -> 3" in m for m in messages), messages
    trainer.fit()
    assert [r["lr"] for r in _records(out, "train")] == [5e-4, 5e-5]  # epochs 2 and 3 (epoch 1 was not logged here)
    state = load_checkpoint(out / "last.pt")
    assert state["config"]["lr"] == 5e-4 and state["config"]["milestones"] == [3]
    assert state["optimizer"]["param_groups"][0]["initial_lr"] == 5e-4
    assert json.loads((out / "config.json").read_text())["lr"] == 5e-4


@pytest.mark.parametrize("fields, names", [
    ({"batch_size": 8}, ["batch_size 16 -> 8"]),
    ({"num_instances": 2, "backbone": "resnet34"}, ["num_instances 4 -> 2", "backbone 'resnet18' -> 'resnet34'"]),
    ({"height": 96}, ["height 64 -> 96"]),
    ({"seed": 5}, ["seed 0 -> 5"]),
])
def test_a_setting_the_state_cannot_follow_is_refused_by_name(one_step, tmp_path, market, fields, names):
    out = _copy_run(one_step, tmp_path / "run")
    trainer = Trainer(tiny_config(out, **fields), market, log=lambda m: None)
    with pytest.raises(ValueError, match="cannot resume .*last.pt' with changed settings") as caught:
        trainer.resume(out / "last.pt")
    for name in names:
        assert name in str(caught.value)
    assert trainer.global_step == 0  # nothing was loaded


def test_best_pt_cannot_be_resumed_from(one_step, market):
    trainer = Trainer(tiny_config(one_step), market, log=lambda m: None)
    with pytest.raises(ValueError, match="best.pt.*holds the model weights only .* resume from last.pt"):
        trainer.resume(one_step / "best.pt")


def test_cli_resume_needs_none_of_the_original_flags(one_step, tmp_path, capsys):
    out = _copy_run(one_step, tmp_path / "run")
    # Neither the preset's ResNet-50 nor its 384x128 input: the saved config is the base (no size mismatch).
    assert main(["train", "--resume", str(out / "last.pt"), "--set", "lr=0.0005", "--output-dir", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["lr"] == 0.0005 and config["backbone"] == "resnet18" and config["height"] == 64
    assert load_checkpoint(out / "last.pt")["progress"]["global_step"] == 4
    assert "lr 0.001 -> 0.0005" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "8"], "batch_size 16 -> 8"),
    (["--config", "market1501"], "height 64 -> 384"),  # an explicit preset overrides the saved
])
def test_cli_resume_refuses_with_one_line(one_step, capsys, flags, message):
    assert main(["train", "--resume", str(one_step / "last.pt"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("name, content", [("best.pt", None), ("empty.pt", b""), ("junk.pt", b"PK\x03\x04junk")])
def test_cli_resume_from_a_file_that_cannot_be_resumed(one_step, tmp_path, capsys, name, content):
    path = one_step / name if content is None else tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert main(["train", "--resume", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and err.count("\n") == 1


def test_resume_auto_starts_fresh_then_resumes(root, tmp_path, capsys):
    out = tmp_path / "auto"
    flags = ["train", "--config", "market1501", "--data-root", str(root), "--output-dir", str(out), *TINY_FLAGS,
             "--resume", "auto"]
    assert main([*flags, "--max-steps", "1"]) == 0  # no last.pt yet: a new run
    assert "resumed from" not in capsys.readouterr().out
    assert main(flags) == 0  # the same command line again: continues from step 1
    assert f"resumed from {out / 'last.pt'} at epoch 1, batch 1, step 1" in capsys.readouterr().out
    assert load_checkpoint(out / "last.pt")["progress"]["global_step"] == 4
