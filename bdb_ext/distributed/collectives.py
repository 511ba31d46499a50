"""Small collectives for logging and evaluation; each is the identity for a single process."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from .process_group import get_rank, get_world_size

__all__ = ["all_reduce_mean", "broadcast_object", "gather_rows", "shard_bounds"]


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over ranks (a new tensor; ``tensor`` itself is left as it is)."""
    world = get_world_size()
    if world == 1:
        return tensor.clone()
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world


def shard_bounds(length: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of rank ``rank``'s contiguous share of ``length`` items (the first ``length % world_size``
    ranks take one more), so concatenating the shards in rank order gives the original order back."""
    base, extra = divmod(length, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def gather_rows(local: torch.Tensor, total: int) -> torch.Tensor:
    """Concatenate every rank's ``local`` rows (rank order) into the ``total`` rows :func:`shard_bounds` split.

    Shards can differ by one row and collectives need equal shapes, so each is padded to the largest share and
    trimmed after the gather. ``local`` must live where the backend expects it (CUDA for NCCL).
    """
    rank, world = get_rank(), get_world_size()
    if world == 1:
        return local
    sizes = [shard_bounds(total, r, world) for r in range(world)]
    if local.shape[0] != sizes[rank][1] - sizes[rank][0]:
        raise ValueError(f"gather_rows: rank {rank} holds {local.shape[0]} rows, its share of {total} is "
                         f"{sizes[rank][1] - sizes[rank][0]}")
    largest = max(end - start for start, end in sizes)
    padded = local.new_zeros((largest, *local.shape[1:]))
    padded[:local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:end - start] for part, (start, end) in zip(parts, sizes, strict=True)])


def broadcast_object(value: Any, src: int = 0) -> Any:
    """``value`` of rank ``src`` on every rank (pickled; for small results such as evaluation scores)."""
    if get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]
