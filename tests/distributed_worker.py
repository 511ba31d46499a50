"""Run under ``torchrun --nproc_per_node=2`` (gloo, CPU) by tests/test_distributed.py; not a test module itself.

``python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_worker.py OUT.pt``: each rank
trains a tiny BDBNet one step under DDP on its half of a fixed P x K batch with cross-rank mining, checks the
lock-step rectangle, and rank 0 adds the single-process reference on the whole batch; rank 0 saves it all to OUT.pt.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch import nn

from bdb_ext.distributed import (CrossRankBDBLoss, all_reduce_mean, check_lockstep, gather_rows, init_distributed,
                                 lockstep_generator, shard_bounds, shutdown_distributed, wrap_ddp)
from bdb_ext.losses import BDBLoss
from bdb_ext.models import BDBNet

IDS, K, STEPS = 4, 4, 3


def tiny_model() -> BDBNet:
    torch.manual_seed(0)
    model = BDBNet(IDS, "resnet18", pretrained=False, h_ratio=0.5, w_ratio=0.5).train()
    # Batch statistics of 8 samples and of 16 differ, and SyncBatchNorm is GPU-only: frozen BatchNorm makes the
    # network per-sample, so the comparison isolates what DDP and cross-rank mining do.
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    return model


class Head(nn.Module):
    """Features -> a BDBOutput-like tuple: two embeddings and two classifiers."""

    def __init__(self, classes: int = 32) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.embed = nn.Linear(24, 20)
        self.global_classifier = nn.Linear(8, classes)
        self.bdb_classifier = nn.Linear(12, classes)

    def forward(self, x: torch.Tensor):
        from bdb_ext.models import BDBOutput

        e = torch.tanh(self.embed(x))
        g, b = e[:, :8], e[:, 8:]
        return BDBOutput(g, b, self.global_classifier(g), self.bdb_classifier(b), torch.zeros(4, dtype=torch.long))


def paper_batch(rank: int, world: int) -> dict:
    data = torch.Generator().manual_seed(11)
    x = torch.randn(128, 24, generator=data)
    labels = torch.arange(32).repeat_interleave(4)
    start, end = shard_bounds(128, rank, world)
    head = Head()
    ddp = wrap_ddp(head, torch.device("cpu"))
    terms = CrossRankBDBLoss(margin=0.3)(ddp(x[start:end]), labels[start:end])
    terms.total.backward()
    out = {"paper_loss": all_reduce_mean(torch.stack([t.detach() for t in terms])),
           "paper_grads": {n: p.grad.clone() for n, p in head.named_parameters()}}
    if rank == 0:
        reference = Head()
        terms = BDBLoss(margin=0.3)(reference(x), labels)
        terms.total.backward()
        out["paper_reference_loss"] = torch.stack([t.detach() for t in terms])
        out["paper_reference_grads"] = {n: p.grad.clone() for n, p in reference.named_parameters()}
    return out


def main(out_path: str) -> None:
    torch.set_num_threads(1)
    init_distributed("cpu")
    rank, world = dist.get_rank(), dist.get_world_size()
    report: dict = {}

    # A differently seeded generator per rank must be caught by the start-up check.
    try:
        check_lockstep(torch.Generator().manual_seed(rank))
        report["unsynced_detected"] = False
    except RuntimeError:
        report["unsynced_detected"] = True

    generator = lockstep_generator(1234 + rank, "cpu")  # rank 0's seed wins
    check_lockstep(generator)
    model = tiny_model()
    model.drop_pool.generator = generator
    ddp = wrap_ddp(model, torch.device("cpu"))
    criterion = CrossRankBDBLoss()

    data = torch.Generator().manual_seed(7)
    images = torch.randn(IDS * K, 3, 64, 32, generator=data)
    labels = torch.arange(IDS).repeat_interleave(K)
    start, end = shard_bounds(len(labels), rank, world)  # the sampler's shard: whole identities per rank

    rects = []
    for step in range(STEPS):
        ddp.zero_grad(set_to_none=True)
        output = ddp(images[start:end])
        terms = criterion(output, labels[start:end])
        terms.total.backward()
        rects.append(output.rect.clone())
        if step == 0:
            report["loss"] = all_reduce_mean(torch.stack([t.detach() for t in terms]))
            report["local_triplet_global"] = BDBLoss()(output, labels[start:end]).triplet_global.detach()
            report["grads"] = {name: p.grad.clone() for name, p in model.named_parameters()}
            report["rect"] = output.rect.clone()
    everyone = [torch.empty(STEPS, 4, dtype=torch.int64) for _ in range(world)]
    dist.all_gather(everyone, torch.stack(rects))
    report["rects"] = torch.stack(everyone)  # (world, steps, 4)

    # The paper's batch, 32 identities x 4 = 128, as 2 ranks x 64 through a small DDP head (no BatchNorm).
    report.update(paper_batch(rank, world))

    rows = torch.arange(5 * 3, dtype=torch.float32).view(5, 3)
    lo, hi = shard_bounds(5, rank, world)
    report["gathered_rows"] = gather_rows(rows[lo:hi], 5)

    if rank == 0:
        reference = tiny_model()
        output = reference(images, report["rect"])
        terms = BDBLoss()(output, labels)
        terms.total.backward()
        report["reference_loss"] = torch.stack([t.detach() for t in terms])
        report["reference_grads"] = {name: p.grad.clone() for name, p in reference.named_parameters()}
        torch.save(report, out_path)
    dist.barrier()
    shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
