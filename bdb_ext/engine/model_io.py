"""Building BDBNet from a config, and rebuilding it from a checkpoint."""

from __future__ import annotations

import os
import pickle
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
    """load_checkpoint, with a clear error for a folder and for a file that is not a readable checkpoint.

    torch.load's own errors name neither the file nor the problem: an empty file gives a bare EOFError, a truncated
    one a RuntimeError from the zip reader, a text file KeyError '101', and random bytes "Unsupported operand 196".
    """
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {str(path)!r} is a folder; pass a checkpoint file in it, such as "
                                f"{str(path / 'best.pt')!r}")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"checkpoint {str(path)!r} is an empty file (was it written completely?)")
    try:
        return load_checkpoint(path, map_location="cpu")
    except OSError:
        raise  # missing or unreadable: the message names the file
    except pickle.UnpicklingError as error:
        # weights_only refuses what is not tensors and plain containers; torch's reason ("Unsupported operand 149",
        # "Unsupported global ...") is one line of a paragraph about the weights_only default.
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        at = next((i for i, line in enumerate(lines) if "Unpickler error" in line), None)
        reason = "" if at is None else (lines[at].split("error:", 1)[1].strip() or lines[min(at + 1, len(lines) - 1)])
        raise ValueError(f"checkpoint {str(path)!r} is corrupt or holds objects other than tensors and plain "
                         f"containers, which are not loaded (weights_only){': ' + reason if reason else ''}"
                         ) from error
    except (EOFError, RuntimeError, KeyError, IndexError, ValueError, TypeError) as error:
        if str(path) in str(error):
            raise  # load_checkpoint's own message ("does not hold a dict") already names the file
        first = str(error).split(". ")[0].splitlines()[0] if str(error) else ""
        raise ValueError(f"checkpoint {str(path)!r} is not a readable PyTorch checkpoint (truncated or corrupt "
                         f"file?): {type(error).__name__}: {first}") from error


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
