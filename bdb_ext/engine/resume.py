"""Resuming a run: the config a resumed run uses, which settings may change on resume, and ``--resume auto``.

A resumed run's config is the checkpoint's own config with the given overrides on top (so a resume needs none of
the original flags). A changed setting either applies from the next step on (lr and the schedule, the loss weights,
evaluation, logging, runtime switches, ...) or, when the checkpointed state cannot carry over exactly, is refused
with an error naming it (:data:`FIXED_ON_RESUME`). ``config.json`` and the next checkpoints then hold the config
that is really in force.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint
from .config import TrainConfig, config_from_dict

__all__ = ["FIXED_ON_RESUME", "RESUMABLE_KEYS", "LAST_CHECKPOINT", "changed_settings", "check_resumable",
           "check_resume_settings", "find_resume_checkpoint", "resume_config"]

#: The file the trainer writes to resume from, in ``output_dir``.
LAST_CHECKPOINT = "last.pt"

#: Entries a checkpoint needs to continue a run (``best.pt`` holds the weights only).
RESUMABLE_KEYS = ("progress", "model", "optimizer", "scheduler", "scaler", "sampler", "rng")

_DATA_STREAM = "fixes the sampler's batches and the augmentation stream, so the run would not continue exactly"
_MODEL_SHAPE = "fixes the model's shape or input size, which the checkpoint's weights and optimizer state have"
_INITIAL_WEIGHTS = "sets only the initial weights; a resumed run continues from the checkpoint's"

#: Settings a resume refuses to change, with why. Every other setting applies from the resumed step on.
FIXED_ON_RESUME: dict[str, str] = {
    "dataset": _DATA_STREAM, "recipe": _DATA_STREAM, "batch_size": _DATA_STREAM, "num_instances": _DATA_STREAM,
    "seed": _DATA_STREAM, "max_iters_per_epoch": _DATA_STREAM,
    "height": _MODEL_SHAPE, "width": _MODEL_SHAPE, "resize": _MODEL_SHAPE, "crop": _MODEL_SHAPE,
    "backbone": _MODEL_SHAPE, "global_dim": _MODEL_SHAPE, "bdb_dim": _MODEL_SHAPE,
    "pretrained": _INITIAL_WEIGHTS, "pretrained_path": _INITIAL_WEIGHTS,
}


def changed_settings(saved: dict[str, Any], config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{field: (saved value, new value)}`` for every field of ``config`` that differs from the checkpoint's
    config ``saved`` (a field the checkpoint predates counts as its default)."""
    base = config_from_dict(saved).to_dict()
    return {name: (base[name], value) for name, value in config.to_dict().items() if base[name] != value}


def check_resumable(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Raise ValueError naming ``path`` unless ``state`` holds everything a resume needs."""
    missing = [key for key in RESUMABLE_KEYS if key not in state]
    if not missing:
        return
    if "model" in state and "optimizer" not in state:
        raise ValueError(f"cannot resume from {str(path)!r}: it holds the model weights only (best.pt), not the "
                         f"optimizer, schedule, sampler and RNG state a resume continues from; resume from "
                         f"{LAST_CHECKPOINT} in the same folder")
    raise ValueError(f"cannot resume from {str(path)!r}: not a training checkpoint (missing {missing})")


def check_resume_settings(saved: dict[str, Any], config: TrainConfig, path: str | os.PathLike,
                          ) -> dict[str, tuple[Any, Any]]:
    """The settings that change on this resume (all of them allowed); ValueError naming every refused one."""
    changes = changed_settings(saved, config)
    refused = {name: change for name, change in changes.items() if name in FIXED_ON_RESUME}
    if refused:
        details = "; ".join(f"{name} {old!r} -> {new!r} ({FIXED_ON_RESUME[name]})"
                            for name, (old, new) in refused.items())
        raise ValueError(f"cannot resume {str(path)!r} with changed settings: {details}. Drop these overrides to "
                         f"resume, or start a new run in another output_dir")
    return changes


def resume_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The config of the run saved in ``path`` with ``overrides`` (field -> value) on top, validated.

    Only the checkpoint's config entry is read (the file is memory-mapped, not loaded whole).
    """
    state = load_checkpoint(path, mmap=True)
    check_resumable(state, path)
    if not isinstance(state.get("config"), dict):
        raise ValueError(f"cannot resume from {str(path)!r}: it holds no config")
    return config_from_dict({**state["config"], **(overrides or {})})


def find_resume_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """``output_dir/last.pt`` when a run there has written one (``--resume auto``), else None.

    Under torchrun every rank looks, so ``output_dir`` must be on a file system all ranks share (as for any
    resume); no rank writes a checkpoint before all of them have started.
    """
    path = Path(output_dir) / LAST_CHECKPOINT
    return path if path.is_file() else None
