"""torchrun + DistributedDataParallel training that keeps Batch DropBlock's "one rectangle for the whole batch".

- :mod:`.process_group`: start/stop the process group from torchrun's environment (NCCL on GPUs, gloo on CPU),
  ask it for the rank and world size (:func:`is_distributed` is the one "is a group running?" test), and pick each
  process's device.
- :mod:`.lockstep`: the rectangle generator, seeded alike on every rank (seed broadcast once from rank 0) and
  checked once at start-up, so every rank drops the same block at every iteration without a per-step sync.
- :mod:`.cross_rank_loss`: the BDB loss with batch-hard mining over the global batch (embeddings gathered with
  gradients), equal in value and gradient to one process on the concatenated batch.
- :mod:`.collectives`: small helpers (mean over ranks, rank-ordered row gathering, broadcasting a result).
- :mod:`.model`: SyncBatchNorm conversion and the DDP wrapper.

Nothing here imports :mod:`bdb_ext.engine`; the engine uses this package.
"""

from .collectives import all_reduce_mean, broadcast_object, gather_rows, shard_bounds
from .cross_rank_loss import CrossRankBDBLoss, gather_with_grad
from .lockstep import check_lockstep, lockstep_generator
from .model import broadcast_buffers, convert_sync_batchnorm, wrap_ddp
from .process_group import (DistributedEnv, get_rank, get_world_size, init_distributed, is_distributed,
                            is_main_process, pick_backend, process_device, shutdown_distributed)

__all__ = [
    "CrossRankBDBLoss", "DistributedEnv", "all_reduce_mean", "broadcast_buffers", "broadcast_object",
    "check_lockstep", "convert_sync_batchnorm", "gather_rows", "gather_with_grad", "get_rank", "get_world_size",
    "init_distributed", "is_distributed", "is_main_process", "lockstep_generator", "pick_backend",
    "process_device", "shard_bounds", "shutdown_distributed", "wrap_ddp",
]
