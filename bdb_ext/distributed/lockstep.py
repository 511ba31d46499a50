"""The rectangle generator in lock-step on every rank.

BDB drops one rectangle for the whole global batch. Each rank draws it itself, from a generator seeded with the
same seed (rank 0's, broadcast once) and advanced identically: the model draws exactly once per training forward,
with the same feature-map shape on every rank. So the rectangles agree at every iteration with no communication
per step; :func:`check_lockstep` verifies the streams once at start-up (and after a resume).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .process_group import get_world_size, is_distributed

__all__ = ["broadcast_seed", "check_lockstep", "lockstep_generator"]


def _collective_device(generator_device: torch.device) -> torch.device:
    # NCCL only moves CUDA tensors; gloo only CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_seed(seed: int) -> int:
    """Rank 0's ``seed`` on every rank (``seed`` itself outside a process group)."""
    if not is_distributed():
        return int(seed)
    device = _collective_device(torch.device("cpu"))
    value = torch.tensor([int(seed)], dtype=torch.int64, device=device)
    dist.broadcast(value, src=0)
    return int(value.item())


def lockstep_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A generator on ``device`` seeded with rank 0's ``seed``, the same stream on every rank."""
    return torch.Generator(device).manual_seed(broadcast_seed(seed))


def check_lockstep(generator: torch.Generator, draws: int = 8) -> None:
    """Raise RuntimeError unless ``generator`` yields the same next ``draws`` numbers on every rank.

    The draws come from a copy of the state, which is put back: the stream the training uses is not advanced.
    A no-op outside a process group of more than one process.
    """
    if not is_distributed():
        return
    state = generator.get_state()
    try:
        sample = torch.randint(0, 2**62, (draws,), generator=generator, device=generator.device)
    finally:
        generator.set_state(state)
    sample = sample.to(_collective_device(generator.device))
    everyone = [torch.empty_like(sample) for _ in range(get_world_size())]
    dist.all_gather(everyone, sample)
    differing = [rank for rank, other in enumerate(everyone) if not torch.equal(other, everyone[0])]
    if differing:
        raise RuntimeError(f"the drop-rectangle generators are out of lock-step: ranks {differing} differ from "
                           "rank 0, so the ranks would drop different blocks; seed them alike (lockstep_generator)")
