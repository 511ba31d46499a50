"""Process-group helpers: work unchanged in a single process and under torch.distributed later."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch.distributed as dist

__all__ = ["get_rank", "get_world_size", "is_main_process", "rank_zero_only"]

F = TypeVar("F", bound=Callable[..., Any])


def get_rank() -> int:
    """This process's rank (0 without an initialised process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """The number of processes (1 without an initialised process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def rank_zero_only(fn: F) -> F:
    """Run ``fn`` on rank 0 only (logging, checkpoint writing); other ranks get None."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs) if is_main_process() else None

    return wrapper  # type: ignore[return-value]
