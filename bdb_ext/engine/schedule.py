"""Learning-rate schedules, as per-epoch multipliers of the base lr for ``torch.optim.lr_scheduler.LambdaLR``.

The multipliers are small callable objects holding only numbers, so ``LambdaLR.state_dict()`` (which stores a
callable object's ``__dict__``) stays loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["StaircaseSchedule", "CosineSchedule", "build_scheduler"]


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
