"""Building BDBNet from a config, and rebuilding it from a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..models import BDBNet
from .checkpoint import load_checkpoint
from .config import TrainConfig, config_from_dict

__all__ = ["build_model", "model_from_checkpoint", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when present, else CPU; anything else as torch.device, checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available; use device=cpu or auto")
    return device


def build_model(config: TrainConfig, num_classes: int, pretrained: bool | None = None) -> BDBNet:
    """BDBNet as ``config`` describes it; ``pretrained`` overrides config.pretrained (False when weights
    will be loaded from a checkpoint anyway)."""
    use_pretrained = config.pretrained if pretrained is None else pretrained
    weights: bool | str = config.pretrained_path if (use_pretrained and config.pretrained_path) else use_pretrained
    return BDBNet(num_classes, config.backbone, pretrained=weights, h_ratio=config.h_ratio, w_ratio=config.w_ratio,
                  fused=config.fused, global_dim=config.global_dim, bdb_dim=config.bdb_dim,
                  block_rounding=config.block_rounding, bn_group_size=config.bn_group_size,
                  rect_group_size=config.bn_group_size if config.rect_per_group else None)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """load_checkpoint (which names the file for an unreadable, truncated or foreign one), with the command line's
    wording for a folder and an empty file."""
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {str(path)!r} is a folder; pass a checkpoint file in it, such as "
                                f"{str(path / 'best.pt')!r}")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"checkpoint {str(path)!r} is an empty file (was it written completely?)")
    return load_checkpoint(path, map_location="cpu")


def model_from_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu",
                          ) -> tuple[BDBNet, TrainConfig, dict]:
    """(model with the checkpoint's weights, its config, the raw checkpoint) from a trainer checkpoint
    (``last.pt`` or ``best.pt``)."""
    state = _read_checkpoint(Path(path))
    missing = [key for key in ("config", "num_classes", "model") if key not in state]
    if missing:
        raise ValueError(f"{str(path)!r} is not a bdb_ext training checkpoint (missing {missing})")
    config = config_from_dict(state["config"])
    model = build_model(config, int(state["num_classes"]), pretrained=False)
    model.load_state_dict(state["model"])
    return model.to(device), config, state
