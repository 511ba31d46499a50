"""Data loading for training and evaluation, built from a :class:`TrainConfig`.

Every training sample's augmentation is drawn from its own seed (run seed, epoch, position in the epoch), so an
epoch's batches are the same whatever the number of workers, and a run resumed in the middle of an epoch sees
exactly the batches it would have seen (the skipped batches are never loaded).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..data import ImageDataset, ImageRecord, RandomIdentitySampler, build_dataset, build_transforms
from ..data.datasets import MetricLearningDataset, ReIDDataset
from .config import TrainConfig
from .rng import sample_seed

__all__ = ["SeededItems", "TrainBatches", "load_dataset", "test_loader", "train_transform", "test_transform"]


class SeededItems(Dataset):
    """``items[(index, seed)]`` is ``dataset[index]`` drawn with torch's and Python's RNGs seeded by ``seed``.

    The caller's RNG state is restored afterwards, so loading in the main process (workers=0) leaves the
    training RNG untouched.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        python_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(python_state)


def load_dataset(config: TrainConfig) -> ReIDDataset | MetricLearningDataset:
    """The data set named by ``config.dataset`` under ``config.data_root``."""
    return build_dataset(config.dataset, config.data_root)


def train_transform(config: TrainConfig):
    """The training augmentation of ``config.recipe`` (PIL image -> (3, H, W) float32)."""
    if config.recipe == "person":
        return build_transforms("person", True, config.height, config.width, cutout=config.cutout,
                                random_erasing=config.random_erasing, erasing_sampler=config.erasing_sampler)
    return build_transforms("metric", True, resize=config.resize, crop=config.crop,
                            random_erasing=config.random_erasing, dataset=config.dataset,
                            erasing_sampler=config.erasing_sampler)


def test_transform(config: TrainConfig):
    """The test transform of ``config.recipe``."""
    if config.recipe == "person":
        return build_transforms("person", False, config.height, config.width)
    return build_transforms("metric", False, resize=config.resize, crop=config.crop, test_size=config.test_size,
                            dataset=config.dataset, test_pad=config.test_pad)


class TrainBatches:
    """The P x K batches of each epoch as a DataLoader that can start at any batch.

    Args:
        records: training records (pids relabelled 0..n-1).
        config: batch_size, num_instances, seed, workers, max_iters_per_epoch are read.
        rank, world_size: this process's share of each global batch (see RandomIdentitySampler).
    """

    def __init__(self, records: Sequence[ImageRecord], config: TrainConfig, *, rank: int = 0,
                 world_size: int = 1, pin_memory: bool = False) -> None:
        self.dataset = SeededItems(ImageDataset(records, train_transform(config)))
        self.sampler = RandomIdentitySampler([r.pid for r in records], config.num_instances, config.batch_size,
                                             seed=config.seed, rank=rank, world_size=world_size)
        self.local_batch_size = config.batch_size // world_size
        self.batch_size = config.batch_size
        self.rank = rank
        self.seed = config.seed
        self.workers = config.workers
        self.max_iters = config.max_iters_per_epoch
        self.pin_memory = pin_memory

    def __len__(self) -> int:
        """Batches per epoch."""
        full = self.sampler.num_batches
        return min(full, self.max_iters) if self.max_iters else full

    def batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        """Epoch ``epoch``'s batches as lists of (dataset index, sample seed)."""
        self.sampler.set_epoch(epoch)
        indices = list(iter(self.sampler))
        size = self.local_batch_size
        # Seeds follow the position in the *global* batch, so an image draws the same augmentation whatever the
        # number of processes (a run resumed on another world size continues the same data stream).
        offset = self.rank * size
        items = [(index, sample_seed(self.seed, epoch, (local // size) * self.batch_size + offset + local % size))
                 for local, index in enumerate(indices)]
        return [items[i:i + size] for i in range(0, len(items), size)][:len(self)]

    def loader(self, epoch: int, start_batch: int = 0) -> DataLoader:
        """Batches ``start_batch``.. of epoch ``epoch``, yielding (images (B, 3, H, W), pids (B,), camids (B,))."""
        return DataLoader(self.dataset, batch_sampler=self.batches(epoch)[start_batch:], num_workers=self.workers,
                          pin_memory=self.pin_memory, persistent_workers=False)


def test_loader(records: Sequence[ImageRecord], config: TrainConfig, pin_memory: bool = False) -> DataLoader:
    """An in-order loader of ``records`` with the test transform."""
    return DataLoader(ImageDataset(records, test_transform(config)), batch_size=config.test_batch_size,
                      shuffle=False, num_workers=config.workers, pin_memory=pin_memory)
