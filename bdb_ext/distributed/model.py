"""SyncBatchNorm conversion and the DistributedDataParallel wrapper."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .process_group import is_distributed

__all__ = ["broadcast_buffers", "convert_sync_batchnorm", "wrap_ddp"]


def convert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm layer replaced by SyncBatchNorm (statistics over the global batch).

    The state-dict keys and buffers stay the same, so checkpoints load into a model with plain BatchNorm (one
    process, or a run without SyncBatchNorm). PyTorch's SyncBatchNorm runs on GPUs only.
    """
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_ddp(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """``model`` in DistributedDataParallel, one device per process (``device_ids`` only for CUDA).

    Every parameter of BDBNet takes part in each training forward, so unused-parameter search stays off.
    """
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, output_device=device_ids[0] if device_ids else None)


def broadcast_buffers(model: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) into every rank's ``model``, in place.

    Why: DDP broadcasts rank 0's buffers at the start of each training forward, but that forward then updates
    every rank's running statistics with its own shard; before a sharded evaluation, all ranks must score with the
    weights rank 0 checkpoints. A no-op outside a process group.
    """
    if not is_distributed():
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=src)
