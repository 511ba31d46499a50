"""The P x K identity sampler of the BDB recipe."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["RandomIdentitySampler"]


class RandomIdentitySampler(Sampler[int]):
    """Yields dataset indices in batches of P identities x K images (P = batch_size // num_instances).

    One epoch visits every identity once, in a random order, as the official BDB sampler does: each identity
    contributes K of its images, drawn without replacement, or with replacement when it has fewer than K. Identities
    left over after the last full batch are skipped (drop_last), so every batch is complete and ``len()`` is exact.
    Use it with a DataLoader whose ``batch_size`` is ``batch_size // world_size``.

    Reproducible: epoch ``e`` of seed ``s`` always yields the same indices. ``set_epoch(e)`` selects the epoch; an
    epoch that was not set explicitly follows the previous one, so a plain loop over epochs also differs per epoch.

    Sharding: with ``world_size`` processes, every process draws the same global batches and takes its own
    P / world_size identities of each (all K images of an identity stay on one process), so the global batch is
    still P x K and triplet mining within a process sees complete identities.

    Args:
        labels: the identity of every dataset item (sequence, numpy array or 1-D tensor of ints).
        num_instances: K, images per identity in a batch.
        batch_size: P x K, the global batch size across all processes.
        seed: base seed of the random order.
        rank, world_size: this process and the number of processes.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray | torch.Tensor, num_instances: int = 4,
                 batch_size: int = 128, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"RandomIdentitySampler: labels must be a non-empty 1-D sequence of ints, got shape "
                             f"{labels.shape} and dtype {labels.dtype}")
        for name, value in (("num_instances", num_instances), ("batch_size", batch_size),
                            ("world_size", world_size)):
            # bool is an int subclass, but num_instances=True is a mistake, not K = 1.
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RandomIdentitySampler: {name} must be a positive int, got {value!r}")
        if batch_size % num_instances:
            raise ValueError(f"RandomIdentitySampler: batch_size ({batch_size}) must be a multiple of "
                             f"num_instances ({num_instances})")
        self.num_identities_per_batch = batch_size // num_instances
        if self.num_identities_per_batch % world_size:
            raise ValueError(f"RandomIdentitySampler: the {self.num_identities_per_batch} identities of a batch "
                             f"must split evenly over world_size={world_size}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"RandomIdentitySampler: rank must be an int in [0, {world_size}), got {rank!r}")
        # numpy's seed sequences take non-negative ints only; checked here rather than at the first epoch.
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"RandomIdentitySampler: seed must be a non-negative int, got {seed!r}")
        identities, inverse = np.unique(labels, return_inverse=True)
        if len(identities) < self.num_identities_per_batch:
            raise ValueError(f"RandomIdentitySampler: a batch needs {self.num_identities_per_batch} identities "
                             f"(batch_size {batch_size} / num_instances {num_instances}), labels hold only "
                             f"{len(identities)}")
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))[:-1]
        self._indices_per_identity = np.split(order, bounds)
        self.num_instances = num_instances
        self.batch_size = batch_size
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.num_batches = len(identities) // self.num_identities_per_batch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches * self.batch_size // self.world_size

    def __iter__(self) -> Iterator[int]:
        # A seed sequence over (seed, epoch) gives independent streams per epoch without arithmetic collisions.
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        used = self.num_batches * self.num_identities_per_batch
        chosen = rng.permutation(len(self._indices_per_identity))[:used]
        k = self.num_instances
        groups = self._indices_per_identity
        picks = np.stack([rng.choice(groups[i], size=k, replace=len(groups[i]) < k)
                          for i in chosen])  # (identities used, K)
        per_rank = self.num_identities_per_batch // self.world_size
        picks = picks.reshape(self.num_batches, self.world_size, per_rank * k)[:, self.rank]
        return iter(picks.reshape(-1).tolist())

    def state_dict(self) -> dict[str, Any]:
        """The seed and the next epoch, enough to resume at an epoch boundary."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
