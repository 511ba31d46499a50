"""The trainer under faults: a non-finite loss stops (or skips) at its step keeping the last good checkpoint, an
epoch is on disk before its evaluation can fail, and settings that only the evaluation reads are refused before the
first step."""

from __future__ import annotations

import math

import pytest
import torch

from bdb_ext.data import Market1501
from bdb_ext.data.datasets import MetricLearningDataset, ReIDDataset
from bdb_ext.engine import NonFiniteLossError, Trainer, config_from_dict, load_checkpoint
from bdb_ext.losses.bdb_loss import BDBLossTerms
from bdb_tiny import tiny_config, tiny_market


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    return Market1501(tiny_market(tmp_path_factory.mktemp("cache")))


def quiet(messages: list[str] | None = None):
    return (lambda m: None) if messages is None else messages.append


class PoisonAt:
    """The BDB loss with one term replaced by ``value`` at global step ``step`` (1-based)."""

    def __init__(self, trainer: Trainer, step: int, term: str, value: float = math.nan) -> None:
        self.trainer, self.step, self.term, self.value = trainer, step, term, value
        self.criterion = trainer.criterion

    def __call__(self, output, labels) -> BDBLossTerms:
        terms = self.criterion(output, labels)
        if self.trainer.global_step + 1 != self.step:
            return terms
        poisoned = terms._replace(**{self.term: getattr(terms, self.term) * self.value})
        weights = self.criterion.weights
        return poisoned._replace(total=sum(weights[n] * getattr(poisoned, n) for n in weights))


@pytest.mark.parametrize("lr", [math.inf, -math.inf, math.nan, 0.0])
def test_a_non_finite_or_zero_lr_is_refused_by_the_config(lr):
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, inf\)"):
        config_from_dict({"lr": lr})


def test_exploding_weights_stop_training_at_the_first_non_finite_loss(tmp_path, market):
    # lr=1e30 is finite, so the config accepts it; Adam moves every weight by ~1e30 at step 1, and the features
    # overflow at step 2. The run must stop there, with step 1's checkpoint untouched.
    trainer = Trainer(tiny_config(tmp_path, lr=1e30, checkpoint_every=1), market, log=quiet())
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 2 \(epoch 1, batch 2\): .*"
                                                 r"the last good checkpoint is .*last.pt \(step 1\)") as caught:
        trainer.fit()
    assert caught.value.step == 2 and "loss" in caught.value.terms
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["progress"]["global_step"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_the_command_line_reports_a_non_finite_loss_in_one_line(tmp_path, capsys):
    from bdb_ext.cli import main

    root = tiny_market(tmp_path / "cache")
    flags = ["--config", "market1501", "--data-root", str(root), "--output-dir", str(tmp_path / "run"), "--backbone",
             "resnet18", "--pretrained", "false", "--height", "64", "--width", "32", "--batch-size", "16",
             "--workers", "0", "--device", "cpu", "--progress", "false", "--lr", "1e30", "--checkpoint-every", "1"]
    assert main(["train", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bdb-ext train: error: non-finite loss at step 2") and err.count("\n") == 1, err


@pytest.mark.parametrize("term, value", [("triplet_bdb", math.nan), ("ce_global", math.inf)])
def test_the_error_names_the_step_and_the_term(tmp_path, market, term, value):
    trainer = Trainer(tiny_config(tmp_path, checkpoint_every=1), market, log=quiet())
    trainer.criterion = PoisonAt(trainer, 2, term, value)
    with pytest.raises(NonFiniteLossError, match=f"at step 2 .*{term}=(nan|inf)") as caught:
        trainer.fit()
    assert set(caught.value.terms) == {"loss", term}  # the total and the poisoned term, no other
    after_step_1 = load_checkpoint(tmp_path / "last.pt")
    assert after_step_1["progress"]["global_step"] == 1
    for name, weight in trainer.model.named_parameters():  # the failed step updated no weight
        torch.testing.assert_close(weight.detach(), after_step_1["model"][name], rtol=0, atol=0, msg=name)


def test_skip_nonfinite_skips_the_step_and_counts_it(tmp_path, market):
    messages: list[str] = []
    trainer = Trainer(tiny_config(tmp_path, epochs=1, skip_nonfinite=True, checkpoint_every=1), market,
                      log=quiet(messages))
    trainer.criterion = PoisonAt(trainer, 2, "triplet_global")
    trainer.fit(max_steps=1)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    adam_steps = [s["step"].clone() for s in trainer.optimizer.state.values()]
    trainer.fit()  # step 2, the last of the epoch, is poisoned
    for name, value in trainer.model.state_dict().items():  # weights and BatchNorm statistics as before it
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)
    assert [s["step"] for s in trainer.optimizer.state.values()] == adam_steps
    assert trainer.skipped_steps == 1 and trainer.global_step == 2
    assert any("step 2: non-finite loss (loss=nan, triplet_global=nan), step skipped (1 skipped so far)" in m
               for m in messages), messages
    import json
    train_records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
                     if '"train"' in line]
    assert train_records[-1]["skipped"] == 1 and math.isfinite(train_records[-1]["loss"])
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["skipped_steps"] == 1


def test_a_failing_evaluation_keeps_the_epoch_and_a_resume_evaluates_it(tmp_path, market, monkeypatch):
    trainer = Trainer(tiny_config(tmp_path, epochs=1), market, log=quiet())
    trained = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    def corrupt_gallery_image():
        raise OSError("image file is truncated: bounding_box_test/0001_c1s1_000001_01.jpg")

    monkeypatch.setattr(trainer, "evaluate", corrupt_gallery_image)
    with pytest.raises(OSError, match="truncated"):
        trainer.fit()
    state = load_checkpoint(tmp_path / "last.pt")  # epochs=1: the only epoch is kept
    assert state["progress"]["epoch"] == 1 and state["progress"]["eval_pending"] is True
    assert not (tmp_path / "best.pt").exists()
    assert any(not torch.equal(state["model"][k], trained[k]) for k in trained)  # trained weights, not initial

    resumed = Trainer(tiny_config(tmp_path, epochs=1), market, log=quiet())
    resumed.resume(tmp_path / "last.pt")
    results = resumed.fit()  # nothing left to train: the pending evaluation runs
    assert results is not None and resumed.global_step == state["progress"]["global_step"]
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["eval_pending"] is False
    assert load_checkpoint(tmp_path / "best.pt")["best"]["epoch"] == 1


def _never_steps(trainer_class, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a training step ran before the settings were checked")

    monkeypatch.setattr(trainer_class, "train_step", fail)


@pytest.mark.parametrize("fields, message", [
    ({"best_metric": "R@1"}, "best_metric 'R@1' is not reported for data set 'market1501'"),
    ({"best_metric": "rank-3"}, r"best_metric 'rank-3' is not reported .* choose one of \['mAP', 'mINP', 'rank-1'"),
    ({"tensorboard": True, "output_dir": "/proc/not-writable"}, "not-writable"),
])
def test_settings_read_at_evaluation_are_refused_before_the_first_step(tmp_path, market, monkeypatch, fields,
                                                                        message):
    _never_steps(Trainer, monkeypatch)
    fields = {"output_dir": str(tmp_path), **fields}
    with pytest.raises((ValueError, OSError), match=message):
        Trainer(tiny_config(**fields), market, log=quiet()).fit()


@pytest.mark.parametrize("fields", [{"rerank": True}, {"ap_cutoff": 5}, {"best_metric": "mAP"}])
def test_re_id_only_settings_are_refused_on_recall_data(tmp_path, market, monkeypatch, fields):
    _never_steps(Trainer, monkeypatch)
    data = MetricLearningDataset(market.train, market.query)
    with pytest.raises(ValueError, match="re-ID data sets only|is not reported"):
        Trainer(tiny_config(tmp_path, **fields), data, log=quiet())
    Trainer(tiny_config(tmp_path, best_metric="R@1"), data, log=quiet())  # the Recall@K settings are accepted


def test_a_split_the_scoring_refuses_is_refused_before_the_first_step(tmp_path, market, monkeypatch):
    # Every query seen by the gallery only under its own camera: the evaluation has no valid query. A small split
    # is scored once on random features up front, so this (like re-ranking's k against a set smaller than k) fails
    # in the constructor instead of after the first epoch.
    _never_steps(Trainer, monkeypatch)
    query = market.query[:1]
    gallery = [r for r in market.gallery if r.pid != query[0].pid]
    data = ReIDDataset(market.train, query, gallery, relabel_train=False)
    with pytest.raises(ValueError, match=r"evaluation settings fail on data set 'market1501' \(1 query, .*"
                                         r"no query has a valid match"):
        Trainer(tiny_config(tmp_path), data, log=quiet())
