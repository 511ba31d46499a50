"""torchrun + DDP on the CPU (gloo, 2 processes): lock-step rectangles, cross-rank mining equal to one process on
the concatenated batch (loss and gradients), a short torchrun training run that checkpoints, evaluates sharded
and resumes in one process; plus the single-process pieces (sharded data stream, SyncBatchNorm conversion)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bdb_tiny import tiny_config, tiny_market

from bdb_ext.data import Market1501
from bdb_ext.distributed import CrossRankBDBLoss, convert_sync_batchnorm, gather_rows, pick_backend, shard_bounds
from bdb_ext.engine import Trainer, evaluate, load_checkpoint, model_from_checkpoint
from bdb_ext.engine.loaders import TrainBatches
from bdb_ext.losses import BDBLoss
from bdb_ext.models import BDBNet

TESTS = Path(__file__).resolve().parent
TIMEOUT_S = 300  # a hang (a rank stuck in a collective) fails the test instead of blocking CI


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Linux /proc), children first."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 ARGS`` with one thread per process, killed as a group on
    timeout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")]), "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # torchrun starts its workers in sessions of their own: kill them by pid, or they outlive torchrun, keep
        # the output pipe open, and the read below never ends.
        for pid in [*_descendants(process.pid), process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        output, _ = process.communicate()
        pytest.fail(f"torchrun timed out after {TIMEOUT_S} s:\n{output[-4000:]}")
    assert process.returncode == 0, output[-6000:]
    return subprocess.CompletedProcess(command, process.returncode, output, "")


@pytest.fixture(scope="module")
def two_rank_report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ddp") / "report.pt"
    torchrun([str(TESTS / "distributed_worker.py"), str(out)], cwd=out.parent)
    return torch.load(out, weights_only=True)


def test_rectangles_agree_on_every_rank_at_every_step(two_rank_report):
    rects = two_rank_report["rects"]  # (world, steps, 4)
    assert torch.equal(rects[0], rects[1])
    assert len({tuple(r.tolist()) for r in rects[0]}) > 1, "the generator advances: the rectangles change"
    assert two_rank_report["unsynced_detected"], "the start-up check must catch differently seeded ranks"


def test_two_ranks_with_cross_rank_mining_equal_one_process_on_the_whole_batch(two_rank_report):
    report = two_rank_report
    # total, triplet_global, triplet_bdb, ce_global, ce_bdb: the mean over ranks equals the single process.
    # Tolerances hold on any CPU: both sides are float32 sums of the same terms in another order, measured at
    # 2e-7 relative (AMD EPYC), 50x inside rtol; a CPU with other vector widths changes the order, not the size.
    torch.testing.assert_close(report["loss"], report["reference_loss"], rtol=1e-5, atol=1e-6)
    grads, reference = report["grads"], report["reference_grads"]
    assert grads.keys() == reference.keys()
    for name in reference:
        # Float32 sums in another order (two half-batch convolutions, then DDP's average): errors scale with the
        # largest entry of each gradient, measured at 2e-6 to 5e-6 of it (10x inside atol on any CPU: the order
        # differs, the float32 rounding per sum does not); a wrong factor (e.g. a missing or extra 1/R) would be
        # off by 50% or more.
        scale = reference[name].abs().max().item()
        torch.testing.assert_close(grads[name], reference[name], rtol=1e-4, atol=3e-5 * scale + 1e-8, msg=name)
    # Mining within a rank's shard alone is a different loss: the comparison above has teeth.
    assert not torch.isclose(report["local_triplet_global"], report["reference_loss"][1], rtol=1e-4)


def test_two_ranks_of_64_equal_one_process_of_128(two_rank_report):
    # A small head with no convolution: measured errors are at most 2% of these tolerances (loss 2e-7 absolute,
    # gradients 6e-8), so another CPU's summation order stays far inside them.
    report = two_rank_report
    torch.testing.assert_close(report["paper_loss"], report["paper_reference_loss"], rtol=1e-5, atol=1e-6)
    for name, reference in report["paper_reference_grads"].items():
        torch.testing.assert_close(report["paper_grads"][name], reference, rtol=1e-4, atol=1e-6, msg=name)


def test_gather_rows_restores_the_order(two_rank_report):
    torch.testing.assert_close(two_rank_report["gathered_rows"], torch.arange(15.0).view(5, 3))


def test_torchrun_training_checkpoints_evaluates_and_resumes_in_one_process(tmp_path):
    root = tiny_market(tmp_path / "cache")
    out = tmp_path / "run"
    # 8 identities, P x K = 4 x 4: 2 global batches per epoch, 2 identities per rank. Stop at step 3, mid epoch 2,
    # after the sharded evaluation at the end of epoch 1.
    flags = ["--config", "market1501", "--data-root", str(root), "--output-dir", str(out), "--backbone",
             "resnet18", "--pretrained", "false", "--height", "64", "--width", "32", "--batch-size", "16",
             "--workers", "0", "--epochs", "2", "--eval-every", "1", "--device", "cpu", "--progress", "false",
             "--set", "warmup_epochs=0", "--set", "milestones=", "--max-steps", "3"]
    result = torchrun(["-m", "bdb_ext", "train", *flags], cwd=tmp_path)
    assert result.stdout.count("training resnet18 BDBNet") == 1, "rank 0 alone logs"
    assert "2 processes" in result.stdout
    state = load_checkpoint(out / "last.pt")
    assert state["progress"] == {"epoch": 1, "batch": 1, "global_step": 3, "eval_pending": False, "skipped_steps": 0}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["train", "eval"]  # one writer

    market = Market1501(root)
    # The sharded evaluation equals one process scoring the same weights.
    model, config, _ = model_from_checkpoint(out / "best.pt")
    single = evaluate(model, market, config, torch.device("cpu"))
    assert single.mAP == pytest.approx(records[1]["mAP"], abs=1e-6)
    assert single.rank(1) == pytest.approx(records[1]["rank-1"], abs=1e-6)

    resumed = Trainer(tiny_config(out, epochs=2, eval_every=100), market, log=lambda m: None)
    resumed.resume(out / "last.pt")
    resumed.fit()
    assert (resumed.epoch, resumed.batch, resumed.global_step) == (2, 0, 4)
    assert load_checkpoint(out / "last.pt")["progress"]["global_step"] == 4


def test_shards_of_the_data_stream_concatenate_to_the_single_process_stream(tmp_path):
    market = Market1501(tiny_market(tmp_path / "cache"))
    config = tiny_config(tmp_path, batch_size=16, seed=4)
    whole = TrainBatches(market.train, config).batches(epoch=1)
    shards = [TrainBatches(market.train, config, rank=r, world_size=2).batches(epoch=1) for r in range(2)]
    for step, batch in enumerate(whole):
        # Same images *and* the same augmentation seeds: a checkpoint resumes on any number of processes.
        assert shards[0][step] + shards[1][step] == batch


def test_single_process_pieces_are_no_ops():
    torch.manual_seed(0)
    features = torch.randn(8, 5, requires_grad=True)
    labels = torch.arange(4).repeat_interleave(2)

    class Output:
        global_feature = features
        bdb_feature = features * 2
        global_logits = features[:, :4]
        bdb_logits = features[:, 1:]

    torch.testing.assert_close(torch.stack(list(CrossRankBDBLoss()(Output, labels))),
                               torch.stack(list(BDBLoss()(Output, labels))), rtol=0, atol=0)
    assert gather_rows(features, 8) is features
    assert [shard_bounds(5, r, 2) for r in range(2)] == [(0, 3), (3, 5)]
    assert pick_backend("cpu") == "gloo"


def test_sync_batchnorm_checkpoints_load_into_plain_batchnorm():
    model = BDBNet(3, "resnet18", pretrained=False)
    synced = convert_sync_batchnorm(BDBNet(3, "resnet18", pretrained=False))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    model.load_state_dict(synced.state_dict())  # same keys and shapes
