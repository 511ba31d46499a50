"""RandomIdentitySampler: P x K batches, replacement rule, exact length, seeding, sharding."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from bdb_ext.data import RandomIdentitySampler


def batches(sampler: RandomIdentitySampler, size: int) -> list[list[int]]:
    indices = list(sampler)
    assert len(indices) == len(sampler)
    assert len(indices) % size == 0
    return [indices[i:i + size] for i in range(0, len(indices), size)]


def check_batch(batch: list[int], labels: list[int], p: int, k: int) -> None:
    groups = [batch[i:i + k] for i in range(0, len(batch), k)]
    assert len(groups) == p
    pids = [labels[g[0]] for g in groups]
    assert len(set(pids)) == p  # P distinct identities
    for group in groups:
        assert {labels[i] for i in group} == {labels[group[0]]}  # each group is K images of one identity
        available = labels.count(labels[group[0]])
        if available >= k:
            assert len(set(group)) == k  # without replacement when the identity has enough images


def test_pk_batches_and_length() -> None:
    labels = [0] * 6 + [1] * 2 + [2] * 5 + [3] * 1 + [4] * 4 + [5] * 9 + [6] * 4
    sampler = RandomIdentitySampler(labels, num_instances=4, batch_size=8, seed=3)
    assert len(sampler) == (7 // 2) * 8
    got = batches(sampler, 8)
    assert len(got) == 3
    for batch in got:
        check_batch(batch, labels, p=2, k=4)
    # Every identity appears at most once per epoch.
    firsts = Counter(labels[b[i]] for b in got for i in (0, 4))
    assert max(firsts.values()) == 1


def test_small_identities_are_drawn_with_replacement() -> None:
    labels = [0, 1, 1, 2, 3, 3, 3, 3]
    sampler = RandomIdentitySampler(labels, num_instances=4, batch_size=16)
    indices = list(sampler)
    assert Counter(labels[i] for i in indices) == {0: 4, 1: 4, 2: 4, 3: 4}
    assert Counter(indices)[0] == 4 and Counter(indices)[3] == 4  # single-image identities repeat
    assert sorted(i for i in indices if labels[i] == 3) == [4, 5, 6, 7]  # four images: each once


def test_seeded_and_reproducible_per_epoch() -> None:
    labels = np.repeat(np.arange(40), 5)
    a = RandomIdentitySampler(labels, 4, 32, seed=1)
    b = RandomIdentitySampler(torch.as_tensor(labels), 4, 32, seed=1)
    epochs_a = [list(a) for _ in range(3)]  # auto-advancing epochs 0, 1, 2
    epochs_b = []
    for epoch in range(3):
        b.set_epoch(epoch)
        epochs_b.append(list(b))
    assert epochs_a == epochs_b
    assert epochs_a[0] != epochs_a[1]
    assert list(RandomIdentitySampler(labels, 4, 32, seed=2)) != epochs_a[0]
    state = a.state_dict()
    c = RandomIdentitySampler(labels, 4, 32, seed=0)
    c.load_state_dict(state)
    a.set_epoch(state["epoch"])
    assert list(c) == list(a)


@pytest.mark.parametrize("world_size", [2, 4])
def test_sharding_splits_each_global_batch_by_identity(world_size: int) -> None:
    labels = np.repeat(np.arange(50), 3).tolist()
    batch_size, k = 32, 4
    whole = batches(RandomIdentitySampler(labels, k, batch_size, seed=5, rank=0, world_size=1), batch_size)
    shards = [batches(RandomIdentitySampler(labels, k, batch_size, seed=5, rank=r, world_size=world_size),
                      batch_size // world_size) for r in range(world_size)]
    for step, global_batch in enumerate(whole):
        assert sum((shard[step] for shard in shards), []) == global_batch
        owners = [{labels[i] for i in shard[step]} for shard in shards]
        assert sum(len(o) for o in owners) == len(set().union(*owners))  # an identity lives on one rank


def test_with_dataloader() -> None:
    labels = torch.arange(20).repeat_interleave(3)
    data = TensorDataset(torch.arange(60), labels)
    sampler = RandomIdentitySampler(labels, num_instances=4, batch_size=16)
    loader = DataLoader(data, batch_size=16, sampler=sampler)
    got = list(loader)
    assert len(got) == 5 and all(len(x) == 16 and len(set(y.tolist())) == 4 for x, y in got)


def test_errors() -> None:
    with pytest.raises(ValueError, match="multiple of num_instances"):
        RandomIdentitySampler([0, 1], num_instances=4, batch_size=10)
    with pytest.raises(ValueError, match="needs 32 identities"):
        RandomIdentitySampler([0, 1, 2], num_instances=4, batch_size=128)
    with pytest.raises(ValueError, match="split evenly over world_size=3"):
        RandomIdentitySampler(list(range(64)), 4, 32, world_size=3)
    with pytest.raises(ValueError, match="rank must be an int in"):
        RandomIdentitySampler(list(range(64)), 4, 32, rank=2, world_size=2)
    with pytest.raises(ValueError, match="1-D sequence of ints"):
        RandomIdentitySampler([0.5, 1.5])


@pytest.mark.parametrize(("argument", "value"), [("num_instances", True), ("batch_size", True), ("world_size", True),
                                                 ("rank", False), ("seed", -1), ("seed", 1.5), ("seed", True)])
def test_bools_and_negative_seeds_are_refused(argument: str, value: object) -> None:
    # num_instances=True used to mean K = 1; seed=-1 used to fail only when the first epoch was drawn.
    kwargs = {"num_instances": 2, "batch_size": 4, "seed": 0, "rank": 0, "world_size": 1, argument: value}
    with pytest.raises(ValueError, match=f"{argument} must be .*got {value!r}"):
        RandomIdentitySampler(list(range(8)), **kwargs)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 9), min_size=2, max_size=30), k=st.integers(1, 4), p=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1))
def test_invariants_on_random_label_sets(counts: list[int], k: int, p: int, seed: int) -> None:
    labels = [pid for pid, n in enumerate(counts) for _ in range(n)]
    if len(counts) < p:
        with pytest.raises(ValueError):
            RandomIdentitySampler(labels, k, p * k, seed=seed)
        return
    sampler = RandomIdentitySampler(labels, k, p * k, seed=seed)
    got = batches(sampler, p * k)
    assert len(got) == len(counts) // p
    for batch in got:
        check_batch(batch, labels, p, k)
