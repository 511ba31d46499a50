"""The process group: starting and stopping it from torchrun's environment, asking it for this process's rank
and the world size, and picking each process's device. Every "is a process group running?" question in
bdb_ext goes through :func:`is_distributed` or :func:`get_world_size` here."""

from __future__ import annotations

import datetime
import os
from typing import NamedTuple

import torch
import torch.distributed as dist

__all__ = ["DistributedEnv", "distributed_env", "get_rank", "get_world_size", "init_distributed", "is_distributed",
           "is_main_process", "pick_backend", "process_device", "shutdown_distributed"]


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


def _group_running() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's global rank (0 when no process group is running)."""
    return dist.get_rank() if _group_running() else 0


def get_world_size() -> int:
    """The number of processes in the group (1 when no process group is running)."""
    return dist.get_world_size() if _group_running() else 1


def is_distributed() -> bool:
    """True once a process group of more than one process is running: the one test for "do collectives"."""
    return get_world_size() > 1


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): the process that logs and writes checkpoints."""
    return get_rank() == 0


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
    if env is None or env.world_size == 1 or _group_running():
        return env
    backend = backend or pick_backend(device_name)
    if backend == "nccl":
        # NCCL needs the process's GPU chosen before the first collective.
        process_device(torch.device("cuda"), env.local_rank)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return env


def shutdown_distributed() -> None:
    """Leave the process group (no-op when none is running)."""
    if _group_running():
        dist.destroy_process_group()
