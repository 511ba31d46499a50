"""Elastic training: under ``torchrun --max-restarts 1`` a worker SIGKILLed in the middle of an epoch makes torchrun
restart the group, ``--resume auto`` continues from the last checkpoint, and the final weights are bitwise those of
an uninterrupted run (2 CPU processes on gloo, a tiny BDBNet)."""

from __future__ import annotations

import torch
from bdb_tiny import tiny_market
from test_distributed import TESTS, torchrun

from bdb_ext.engine import load_checkpoint

KILL_AT_STEP = 4  # 2 global batches per epoch: step 4 is the second of epoch 2, so the resume starts mid-epoch


def _train(tmp_path, root, name: str) -> tuple[str, dict]:
    out = tmp_path / name
    flags = ["--config", "market1501", "--data-root", str(root), "--output-dir", str(out), "--backbone",
             "resnet18", "--pretrained", "false", "--height", "64", "--width", "32", "--batch-size", "16",
             "--workers", "0", "--epochs", "3", "--eval-every", "100", "--device", "cpu", "--progress", "false",
             "--set", "warmup_epochs=0", "--set", "milestones=2", "--checkpoint-every", "1", "--resume", "auto"]
    result = torchrun(["--max-restarts", "1", str(TESTS / "elastic_worker.py"), "train", *flags], cwd=tmp_path)
    return result.stdout, load_checkpoint(out / "last.pt")


def test_a_killed_worker_is_restarted_and_training_ends_as_if_uninterrupted(tmp_path, monkeypatch):
    root = tiny_market(tmp_path / "cache")
    # torchrun shares one TCP store across restarts by default, and the restarted gloo ranks can read the dead
    # attempt's addresses from it ("Connection refused", or a hang); the opt-out gives each attempt its own.
    # https://github.com/pytorch/pytorch/issues/135712
    monkeypatch.setenv("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    monkeypatch.setenv("BDB_TEST_KILL_RANK", "1")
    monkeypatch.setenv("BDB_TEST_KILL_AT_STEP", str(KILL_AT_STEP))
    log, killed = _train(tmp_path, root, "killed")
    assert f"rank 1: SIGKILL before step {KILL_AT_STEP}" in log, log[-3000:]
    # Rank 0 saved step 3 (checkpoint_every=1) before rank 1 died; the restarted group picked it up, mid epoch 2.
    assert "failed (exitcode: -9) local_rank: 1" in log, "torchrun saw the worker die"
    assert log.count("resumed from") == 1 and "at epoch 2, batch 1, step 3" in log, log[-3000:]
    assert log.count("training resnet18 BDBNet") == 2, "two attempts, each logged once by rank 0"

    monkeypatch.setenv("BDB_TEST_KILL_AT_STEP", "0")  # never
    log, straight = _train(tmp_path, root, "straight")
    assert "resumed from" not in log and "SIGKILL" not in log

    for state in (killed, straight):
        assert state["progress"]["global_step"] == 6 and state["progress"]["epoch"] == 3
    for name, value in straight["model"].items():
        torch.testing.assert_close(killed["model"][name], value, rtol=0, atol=0, msg=name)
    for index, moments in straight["optimizer"]["state"].items():
        for key, value in moments.items():
            torch.testing.assert_close(killed["optimizer"]["state"][index][key], value, rtol=0, atol=0)
    assert killed["optimizer"]["param_groups"][0]["lr"] == straight["optimizer"]["param_groups"][0]["lr"]
    assert killed["rng"]["generators"]["drop_rect"].equal(straight["rng"]["generators"]["drop_rect"])
    assert killed["best"] == straight["best"]
