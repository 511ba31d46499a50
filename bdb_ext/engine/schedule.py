"""Learning-rate schedules, as per-epoch multipliers of the base lr for ``torch.optim.lr_scheduler.LambdaLR``.

The multipliers are small callable objects holding only numbers, so ``LambdaLR.state_dict()`` (which stores a
callable object's ``__dict__``) stays loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["StaircaseSchedule", "CosineSchedule", "build_scheduler", "restore_scheduler"]


class StaircaseSchedule:
    """The official BDB schedule. With e = epoch index + 1 and the defaults (base lr 1e-3):
    e < 50: 1e-4 * (e // 5 + 1) (a staircase warm-up reaching 1e-3); e < 200: 1e-3; e < 300: 1e-4; else 1e-5.

    Generalised: e < warmup_epochs: (e // warmup_step + 1) * warmup_step / warmup_epochs; afterwards 0.1 to the
    number of milestones <= e.
    """

    def __init__(self, warmup_epochs: int = 50, warmup_step: int = 5, milestones: Sequence[int] = (200, 300)) -> None:
        self.warmup_epochs = int(warmup_epochs)
        self.warmup_step = int(warmup_step)
        self.milestones = [int(m) for m in milestones]

    def __call__(self, epoch_index: int) -> float:
        e = epoch_index + 1
        if e < self.warmup_epochs:
            return min(1.0, (e // self.warmup_step + 1) * self.warmup_step / self.warmup_epochs)
        return 0.1 ** sum(e >= m for m in self.milestones)


class CosineSchedule:
    """The staircase warm-up, then a cosine decay from 1 to ``min_factor`` at the last epoch."""

    def __init__(self, epochs: int, warmup_epochs: int = 50, warmup_step: int = 5, min_factor: float = 0.01) -> None:
        self.epochs = int(epochs)
        self.warmup_epochs = int(warmup_epochs)
        self.warmup_step = int(warmup_step)
        self.min_factor = float(min_factor)

    def __call__(self, epoch_index: int) -> float:
        e = epoch_index + 1
        if e < self.warmup_epochs:
            return min(1.0, (e // self.warmup_step + 1) * self.warmup_step / self.warmup_epochs)
        span = max(1, self.epochs - self.warmup_epochs)
        progress = min(1.0, max(0.0, (e - self.warmup_epochs) / span))
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, epochs: int, warmup_epochs: int = 50,
                    warmup_step: int = 5, milestones: Sequence[int] = (200, 300),
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per epoch; ``name`` is "staircase" or "cosine"."""
    if name == "staircase":
        factor = StaircaseSchedule(warmup_epochs, warmup_step, milestones)
    elif name == "cosine":
        factor = CosineSchedule(epochs, warmup_epochs, warmup_step)
    else:
        raise ValueError(f"schedule must be 'staircase' or 'cosine', got {name!r}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def restore_scheduler(scheduler: torch.optim.lr_scheduler.LambdaLR, state: dict[str, Any], base_lr: float,
                      weight_decay: float) -> None:
    """Put ``scheduler`` at the position saved in ``state`` (a LambdaLR state dict) while keeping its own factor
    and ``base_lr``, and set every parameter group's lr and weight decay accordingly.

    Call it after ``optimizer.load_state_dict``, which brings back the saved lr and weight decay: this makes the
    resumed run follow its current config (the lr ``base_lr * factor(epoch)``, the factor built from the current
    schedule settings) instead of the saved one. When nothing changed the lr is the very float the uninterrupted
    run has (the same expression LambdaLR evaluates).
    """
    saved = dict(state)
    saved["lr_lambdas"] = [None] * len(scheduler.lr_lambdas)  # keep this scheduler's factor objects
    saved["base_lrs"] = [float(base_lr)] * len(scheduler.optimizer.param_groups)
    scheduler.load_state_dict(saved)
    for group, factor, base in zip(scheduler.optimizer.param_groups, scheduler.lr_lambdas, scheduler.base_lrs):
        group["initial_lr"] = base
        group["lr"] = base * factor(scheduler.last_epoch)
        group["weight_decay"] = float(weight_decay)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
