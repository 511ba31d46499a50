"""Starting and stopping the process group from torchrun's environment, and each process's device."""

from __future__ import annotations

import datetime
import os
from typing import NamedTuple

import torch
import torch.distributed as dist

__all__ = ["DistributedEnv", "distributed_env", "init_distributed", "is_distributed", "pick_backend",
           "process_device", "shutdown_distributed"]


class DistributedEnv(NamedTuple):
    """What torchrun tells a process: its global rank, the world size and its rank on its node."""

    rank: int
    world_size: int
    local_rank: int


def distributed_env() -> DistributedEnv | None:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), or None when not launched by torchrun/SLURM-style
    launchers that set these variables."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return DistributedEnv(rank, world_size, int(os.environ.get("LOCAL_RANK", rank)))


def is_distributed() -> bool:
    """True once a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def pick_backend(device_name: str) -> str:
    """"nccl" when this run trains on CUDA ("auto" with a GPU present, or "cuda..."), else "gloo"."""
    wants_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    return "nccl" if wants_cuda and dist.is_nccl_available() else "gloo"


def process_device(device: torch.device, local_rank: int | None = None) -> torch.device:
    """This process's device: a CUDA device without an index becomes ``cuda:LOCAL_RANK`` (one GPU per process,
    as torchrun launches them) and is made current, so NCCL and ``torch.cuda`` calls use it."""
    if device.type != "cuda":
        return device
    if device.index is None:
        if local_rank is None:
            env = distributed_env()
            local_rank = env.local_rank if env is not None else 0
        device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def init_distributed(device_name: str = "auto", backend: str | None = None,
                     timeout_s: float = 1800.0) -> DistributedEnv | None:
    """Join the process group torchrun describes (a no-op returning None outside torchrun or for one process).

    Args:
        device_name: the run's ``config.device``; decides the backend when ``backend`` is None.
        backend: "nccl", "gloo" or None (automatic: NCCL for CUDA training, gloo otherwise).
        timeout_s: how long a collective may wait for the other ranks before failing.
    """
    env = distributed_env()
    if env is None or env.world_size == 1 or dist.is_initialized():
        return env
    backend = backend or pick_backend(device_name)
    if backend == "nccl":
        # NCCL needs the process's GPU chosen before the first collective.
        process_device(torch.device("cuda"), env.local_rank)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return env


def shutdown_distributed() -> None:
    """Leave the process group (no-op when none is running)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
