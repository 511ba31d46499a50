"""The training engine: schedules, atomic checkpoints, exact resume, one step lowers the loss, overfitting."""

from __future__ import annotations

import json
import os

import pytest
import torch

from bdb_ext.data import Market1501
from bdb_ext.engine import (CosineSchedule, StaircaseSchedule, Trainer, config_from_dict,
                            load_checkpoint, parse_field_value, save_checkpoint)
from bdb_ext.losses.bdb_loss import BDBLoss
from bdb_ext.models import BDBNet
from bdb_tiny import self_retrieval_dataset, tiny_config, tiny_market


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    return Market1501(tiny_market(tmp_path_factory.mktemp("cache")))


def test_staircase_matches_the_reference_numbers():
    schedule = StaircaseSchedule()
    lr = [1e-3 * schedule(i) for i in range(400)]
    for index in range(400):
        e = index + 1
        expected = 1e-4 * (e // 5 + 1) if e < 50 else 1e-3 if e < 200 else 1e-4 if e < 300 else 1e-5
        assert lr[index] == pytest.approx(expected, rel=1e-12), e


def test_cosine_warms_up_then_decays_to_the_floor():
    schedule = CosineSchedule(epochs=100, warmup_epochs=10, warmup_step=5)
    assert schedule(0) == pytest.approx(0.5) and schedule(9) == pytest.approx(1.0)
    assert schedule(99) == pytest.approx(0.01, abs=1e-3)
    values = [schedule(i) for i in range(9, 100)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_config_parsing_and_errors():
    assert parse_field_value("margin", "none") is None and parse_field_value("margin", "0.3") == 0.3
    assert parse_field_value("milestones", "10,20") == [10, 20]
    assert parse_field_value("fused", "false") is False
    with pytest.raises(ValueError, match="unknown config field"):
        config_from_dict({"epoch": 3})
    with pytest.raises(TypeError, match="batch_size"):
        config_from_dict({"batch_size": "8"})
    with pytest.raises(ValueError, match="num_instances"):
        config_from_dict({"batch_size": 10, "num_instances": 4})
    with pytest.raises(ValueError, match="amp"):
        config_from_dict({"amp": "fp8"})


def test_save_interrupted_midway_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    real_save = torch.save

    def crash_midway(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        handle.truncate(handle.tell() // 2)
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["last.pt"]  # the temporary file was removed


def test_one_optimiser_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = BDBNet(4, "resnet18", pretrained=False).train()
    criterion = BDBLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
    x = torch.randn(8, 3, 64, 32)
    labels = torch.arange(4).repeat_interleave(2)
    rect = torch.tensor([1, 0, 1, 2])
    before = criterion(model(x, rect), labels)
    optimizer.zero_grad()
    before.total.backward()
    optimizer.step()
    after = criterion(model(x, rect), labels)
    # Measured over seeds 0-5: one Adam step lowers this loss by 37% to 70%, so a different summation order on
    # another CPU (relative differences ~1e-6) cannot bring it near "not lower"; 10% still fails a step that only
    # moves noise, or a wrong-signed gradient.
    assert after.total.item() < 0.9 * before.total.item()
    weighted = BDBLoss(triplet_global=0, triplet_bdb=2, ce_global=0.5, ce_bdb=0)(model(x, rect), labels)
    torch.testing.assert_close(weighted.total, 2 * weighted.triplet_bdb + 0.5 * weighted.ce_global)


def _state_equal(a: dict, b: dict) -> None:
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_resume_mid_epoch_is_bitwise_identical(tmp_path, market):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same reduction order in both runs
    try:
        straight = Trainer(tiny_config(tmp_path / "a", epochs=2, h_ratio=0.5), market, log=lambda m: None)
        straight.fit()
        interrupted = Trainer(tiny_config(tmp_path / "b", epochs=2, h_ratio=0.5), market, log=lambda m: None)
        steps_per_epoch = len(interrupted.train_data)
        interrupted.fit(max_steps=steps_per_epoch + 1)  # stop in the middle of epoch 2
        state = load_checkpoint(tmp_path / "b" / "last.pt")  # weights_only=True
        assert state["progress"] == {"epoch": 1, "batch": 1, "global_step": steps_per_epoch + 1,
                                     "eval_pending": False, "skipped_steps": 0}
        resumed = Trainer(tiny_config(tmp_path / "b", epochs=2, h_ratio=0.5), market, log=lambda m: None)
        resumed.resume(tmp_path / "b" / "last.pt")
        resumed.fit()
    finally:
        torch.set_num_threads(threads)
    _state_equal(straight.model.state_dict(), resumed.model.state_dict())
    a, b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for index in a:
        _state_equal(a[index], b[index])
    assert straight.drop_generator.get_state().equal(resumed.drop_generator.get_state())
    lines = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in lines]
    assert kinds == ["train", "train", "eval"]
    assert (tmp_path / "a" / "metrics.csv").read_text().startswith("kind,epoch,step,loss")
    assert (tmp_path / "a" / "best.pt").is_file() and (tmp_path / "a" / "config.json").is_file()


# Train until the target is met, within a budget. Seeded training takes another path on another CPU (oneDNN and the
# vectorised kernels sum in another order), and rank-1 over 11 queries moves by a query from one epoch to the next:
# at a fixed epoch 25, seed 1 reached 11/11 on an AMD EPYC and 10/11 on an Intel Xeon, and seed 0 drops back to 9/11
# at epochs 25-27 after reaching 11/11 at 16. Measured (AMD EPYC, 1 thread, seeds 0-3): the first epoch at 11/11 was
# 16, 22, 16 and 19. Other paths are like other seeds, so a budget of 40 epochs leaves about 2x the worst one seen.
OVERFIT_BUDGET_EPOCHS = 40


def test_overfits_a_tiny_set_to_rank1_100(tmp_path, market):
    data = self_retrieval_dataset(market.train)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the path then depends on the CPU's kernels only, not on its number of cores
    try:
        config = tiny_config(tmp_path, epochs=OVERFIT_BUDGET_EPOCHS, eval_every=1, best_metric="rank-1", seed=1)
        trainer = Trainer(config, data, log=lambda m: None)
        steps_per_epoch = len(trainer.train_data)
        history = []
        for epoch in range(1, OVERFIT_BUDGET_EPOCHS + 1):
            results = trainer.fit(max_steps=epoch * steps_per_epoch)  # one more epoch, then its evaluation
            history.append(results.rank(1))
            if results.rank(1) == 1.0:
                break
    finally:
        torch.set_num_threads(threads)
    assert history[-1] == 1.0, f"rank-1 per epoch: {history}"
    assert load_checkpoint(tmp_path / "best.pt")["best"] == {"metric": "rank-1", "value": 1.0, "epoch": len(history)}


def test_compiled_forward_backward_does_not_recompile_across_rectangles():
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = BDBNet(3, "resnet18", pretrained=False).train()
    counter = CompileCounterWithBackend("aot_eager")

    @torch.compile(backend=counter, fullgraph=True)
    def step(images, rect):
        out = model(images, rect)
        return out.global_feature.sum() + out.bdb_feature.square().sum() + out.bdb_logits.sum()

    images = torch.randn(2, 3, 96, 32)
    for rect in ([0, 0, 2, 2], [3, 0, 2, 2], [4, 0, 2, 2], [1, 1, 3, 1]):
        model.zero_grad()
        step(images, torch.tensor(rect)).backward()
        assert model.bdb_block.conv1.weight.grad is not None
    assert counter.frame_count == 1


# -- checkpoints: unreadable files, stale temporaries -------------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"\x00" * 64, b"not a checkpoint", "truncated"])
def test_an_unreadable_checkpoint_is_one_error_naming_it(tmp_path, content):
    path = tmp_path / "last.pt"
    if content == "truncated":
        save_checkpoint({"w": torch.ones(1000)}, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=f"checkpoint '{path}' (is empty|is not a readable torch checkpoint)"):
        load_checkpoint(path)


def test_checkpoint_paths_that_are_no_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="is a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="does not hold a dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_a_pickle_that_runs_code_is_refused_with_the_path(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path, pickle_module=pickle)
    with pytest.raises(ValueError, match="evil.pt.*not a readable torch checkpoint"):
        load_checkpoint(path)


def test_a_temporary_left_by_a_killed_save_is_removed_by_the_next_save(tmp_path):
    stale = tmp_path / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".best.pt.x.tmp"  # another file's temporary: not this save's business
    other.write_bytes(b"")
    save_checkpoint({"step": 3}, tmp_path / "last.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".best.pt.x.tmp", "last.pt"]
    assert load_checkpoint(tmp_path / "last.pt") == {"step": 3}
