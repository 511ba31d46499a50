"""torchrun + DistributedDataParallel training that keeps Batch DropBlock's "one rectangle for the whole batch".

- :mod:`.launch`: start/stop the process group from torchrun's environment (NCCL on GPUs, gloo on CPU) and pick
  each process's device.
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
from .launch import (DistributedEnv, distributed_env, init_distributed, is_distributed, pick_backend,
                     process_device, shutdown_distributed)
from .lockstep import broadcast_seed, check_lockstep, lockstep_generator
from .model import broadcast_buffers, convert_sync_batchnorm, wrap_ddp

__all__ = [
    "CrossRankBDBLoss", "DistributedEnv", "all_reduce_mean", "broadcast_buffers", "broadcast_object",
    "broadcast_seed", "check_lockstep", "convert_sync_batchnorm", "distributed_env", "gather_rows",
    "gather_with_grad", "init_distributed", "is_distributed", "lockstep_generator", "pick_backend",
    "process_device", "shutdown_distributed", "shard_bounds", "wrap_ddp",
]
