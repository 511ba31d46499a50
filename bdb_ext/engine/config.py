"""The training configuration: one flat dataclass of primitives, so it stores in checkpoints and JSON as is."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["TrainConfig", "config_from_dict", "parse_field_value", "field_types"]


@dataclass
class TrainConfig:
    """Every setting of a BDB training run. Defaults reproduce the official Market-1501 recipe."""

    # data
    dataset: str = "market1501"
    data_root: str = "data"
    recipe: str = "person"  # "person" (resize, flip, Cutout) or "metric" (pad, crop, flip, random erasing)
    height: int = 384  # person recipe: the input size
    width: int = 128
    resize: int = 256  # metric recipe: pad to square, resize, random crop; test size (None: 224 SOP, else 256)
    crop: int = 224
    test_size: int | None = None
    cutout: bool = True
    random_erasing: bool = False
    erasing_sampler: str = "torchvision"  # "official": aspect uniform in (0.3, 3.33), up to 100 tries
    test_pad: bool = True  # metric recipe: pad test images to square (the official CARS test transform does not)
    batch_size: int = 128
    num_instances: int = 4
    workers: int = 4
    test_batch_size: int = 256
    # model
    backbone: str = "resnet50"
    pretrained: bool = True
    pretrained_path: str = ""  # a torchvision-format weights file; overrides the cache lookup
    h_ratio: float = 0.33
    w_ratio: float = 1.0
    fused: bool = True
    block_rounding: str = "round"  # "floor": int(h_ratio * H), the official code that trained the 95.3 Market model
    bn_group_size: int | None = None  # ghost BatchNorm: statistics per K samples, as K-image DataParallel shards
    rect_per_group: bool = False  # one rectangle per bn_group_size samples, as each DataParallel replica drew
    global_dim: int = 512
    bdb_dim: int = 1024
    # loss
    margin: float | None = None  # None: soft margin log(1 + exp(d_ap - d_an)); a float: hard margin
    label_smoothing: float = 0.1
    weight_triplet_global: float = 1.0
    weight_triplet_bdb: float = 1.0
    weight_ce_global: float = 1.0
    weight_ce_bdb: float = 1.0
    # optimisation
    lr: float = 1e-3
    weight_decay: float = 5e-4
    schedule: str = "staircase"  # "staircase" (the official one) or "cosine"
    warmup_epochs: int = 50
    warmup_step: int = 5
    milestones: list[int] = field(default_factory=lambda: [200, 300])
    epochs: int = 400
    # evaluation
    eval_every: int = 30
    eval_flip: bool = False
    rerank: bool = False
    ap_cutoff: int | None = None
    eval_protocol: str = "standard"  # "standard", "official" (flip, AP@50, official ranks) or "both"
    best_metric: str = "mAP"  # the metric that picks best.pt: "mAP", "rank-1", "R@1", ...
    # runtime
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
    amp: str = "none"  # "none", "bf16" or "fp16"
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    output_dir: str = "bdb_out"
    checkpoint_every: int = 0  # also save every this many iterations (0: at epoch ends only)
    skip_nonfinite: bool = False  # a step whose loss is NaN/inf is skipped (counted, logged) instead of stopping
    tensorboard: bool = False
    progress: bool = True
    max_iters_per_epoch: int = 0  # cap on iterations per epoch (0: the sampler's full epoch); for smoke runs
    # distributed (torchrun; ignored in a single process)
    sync_bn: bool = False  # SyncBatchNorm: BatchNorm statistics over the global batch (GPUs only)
    cross_rank_mining: bool = True  # batch-hard mining over the global batch of all ranks (the paper's method)

    def validate(self) -> TrainConfig:
        """Check values that the components would otherwise reject late; return self."""
        choices = {"recipe": ("person", "metric"), "schedule": ("staircase", "cosine"),
                   "amp": ("none", "bf16", "fp16"), "block_rounding": ("round", "floor"),
                   "erasing_sampler": ("torchvision", "official"),
                   "eval_protocol": ("standard", "official", "both")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        positive = ("height", "width", "resize", "crop", "batch_size", "num_instances", "test_batch_size", "epochs", "eval_every",
                    "warmup_step", "global_dim", "bdb_dim")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("workers", "checkpoint_every", "max_iters_per_epoch", "warmup_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size % self.num_instances:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of num_instances "
                             f"({self.num_instances})")
        self._validate_numbers()
        self._validate_runtime()
        self._validate_groups()
        return self

    def _validate_numbers(self) -> None:
        # "not x > 0" rather than "x <= 0": NaN compares false with everything and must be refused too.
        # lr=inf used to train to NaN weights whose features still ranked at a plausible mAP.
        ranges = {  # name: (lowest, lowest allowed, highest, highest allowed)
            "lr": (0.0, False, math.inf, False), "weight_decay": (0.0, True, math.inf, False),
            "label_smoothing": (0.0, True, 1.0, False), "h_ratio": (0.0, False, 1.0, True),
            "w_ratio": (0.0, False, 1.0, True), "margin": (0.0, True, math.inf, False),
            **{name: (0.0, True, math.inf, False) for name in (
                "weight_triplet_global", "weight_triplet_bdb", "weight_ce_global", "weight_ce_bdb")},
        }
        for name, (low, low_ok, high, high_ok) in ranges.items():
            value = getattr(self, name)
            if value is None and name == "margin":
                continue
            above = value >= low if low_ok else value > low
            below = value <= high if high_ok else value < high
            if not (above and below):
                interval = f"{'[' if low_ok else '('}{low:g}, {high:g}{']' if high_ok else ')'}"
                raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
        for name in ("test_size", "ap_cutoff"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be none or >= 1, got {getattr(self, name)}")
        if any(m < 1 for m in self.milestones) or self.milestones != sorted(self.milestones):
            raise ValueError(f"milestones must be epochs >= 1 in increasing order, got {self.milestones}")

    def _validate_runtime(self) -> None:
        # numpy seed sequences (the sampler) take non-negative ints, torch generators at most 2**64 - 1, and the
        # drop rectangle's generator is seeded with seed + 1.
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}") from None
    def _validate_groups(self) -> None:
        """bn_group_size / rect_per_group: the DataParallel-shard emulation."""
        if self.bn_group_size is not None:
            if self.bn_group_size < 1 or self.batch_size % self.bn_group_size:
                raise ValueError(f"bn_group_size must be a positive divisor of batch_size ({self.batch_size}), got "
                                 f"{self.bn_group_size}")
            if self.sync_bn:
                raise ValueError("bn_group_size (BatchNorm per group of samples) and sync_bn (BatchNorm over the "
                                 "global batch) contradict each other; set one")
        if self.rect_per_group and self.bn_group_size is None:
            raise ValueError("rect_per_group needs bn_group_size (the number of samples per rectangle)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_types() -> dict[str, Any]:
    """Field name -> resolved type annotation."""
    return typing.get_type_hints(TrainConfig)


def _parse_scalar(kind: type, text: str, name: str) -> Any:
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}: expected a boolean (true/false), got {text!r}")
    try:
        return kind(text)
    except ValueError as error:
        raise ValueError(f"{name}: expected {kind.__name__}, got {text!r}") from error


def parse_field_value(name: str, text: str) -> Any:
    """Parse the command-line text ``text`` for field ``name`` by its type ("none" for optional fields,
    comma-separated lists)."""
    types_ = field_types()
    if name not in types_:
        raise ValueError(f"unknown config field {name!r}; known fields: {', '.join(types_)}")
    kind = types_[name]
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        if text.strip().lower() in ("none", "null", ""):
            return None
        kind = next(a for a in args if a is not type(None))
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        return [_parse_scalar(item, part, name) for part in text.split(",") if part.strip()]
    return _parse_scalar(kind, text, name)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
    if typing.get_origin(kind) is list:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"config field {name!r} must be a list, got {type(value).__name__}")
        return [_coerce(name, typing.get_args(kind)[0], v) for v in value]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"config field {name!r} must be {kind.__name__}, got {value!r}")
    return value


def config_from_dict(data: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A config from ``base`` (default: the defaults) with the fields of ``data`` replaced, type-checked."""
    types_ = field_types()
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ValueError(f"unknown config fields {unknown}; known fields: {', '.join(types_)}")
    values = (base or TrainConfig()).to_dict()
    for name, value in data.items():
        values[name] = _coerce(name, types_[name], value)
    return TrainConfig(**values).validate()
