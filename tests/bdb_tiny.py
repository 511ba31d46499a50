"""Tiny synthetic data and configs shared by the model, engine, CLI and demo tests (2 CPU cores, seconds)."""

from __future__ import annotations

from pathlib import Path

from bdb_ext.data import ImageRecord
from bdb_ext.data.datasets import ReIDDataset
from bdb_ext.demo import SyntheticSpec, ensure_synthetic_market
from bdb_ext.engine import TrainConfig, config_from_dict

TINY_SPEC = SyntheticSpec(num_train_ids=8, num_test_ids=6, num_cameras=4, cameras_per_id=(2, 3),
                          images_per_camera=(1, 2), num_distractors=3, num_junk=2, height=64, width=32, seed=3)


def tiny_market(cache: Path) -> Path:
    """A cached tiny synthetic Market-layout folder."""
    return ensure_synthetic_market(TINY_SPEC, cache)[0]


def tiny_config(output_dir: Path, **fields) -> TrainConfig:
    """ResNet-18 from scratch at 64x32, P x K = 4 x 4, constant lr, no progress bars, main-process loading."""
    base = dict(dataset="market1501", backbone="resnet18", pretrained=False, height=64, width=32, batch_size=16,
                num_instances=4, workers=0, test_batch_size=64, epochs=2, eval_every=100, warmup_epochs=0,
                milestones=[], lr=1e-3, progress=False, output_dir=str(output_dir), device="cpu")
    base.update(fields)
    return config_from_dict(base)


def self_retrieval_dataset(train: list[ImageRecord]) -> ReIDDataset:
    """The training images split by camera into query (each identity's first camera) and gallery (the rest), so
    a model that memorised the training set can reach rank-1 of 100%."""
    first_cam: dict[int, int] = {}
    for r in train:
        first_cam.setdefault(r.pid, r.camid)
    query = [r for r in train if r.camid == first_cam[r.pid]]
    gallery = [r for r in train if r.camid != first_cam[r.pid]]
    return ReIDDataset(train, query, gallery, relabel_train=False)
