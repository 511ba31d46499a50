"""Ghost BatchNorm: BatchNorm statistics over groups of K samples, as nn.DataParallel's replicas computed them.

The published BDB runs trained under ``nn.DataParallel`` on 4 GPUs: each replica's BatchNorm normalised its own
32-image shard of the 128-image batch. As for the running statistics, DataParallel guarantees that the replica on
``device[0]`` shares its buffers' storage with the wrapped module, while the other replicas update copies that are
thrown away after the forward (see the ``nn.DataParallel`` docstring and ``torch/nn/parallel/replicate.py``). So
``running_mean``/``running_var``/``num_batches_tracked`` moved exactly as a single BatchNorm that saw only the first
shard (the first ``batch / num_gpus`` samples, since ``scatter`` splits the batch in order).

:class:`GhostBatchNorm1d`/:class:`GhostBatchNorm2d` reproduce that on any number of devices: in training, the batch
is split into consecutive groups of ``group_size`` samples, each normalised with its own statistics; the running
statistics are updated from the first group only, once per forward. In eval they are plain BatchNorm. Their
parameters and buffers are BatchNorm's, under the same names, so state dicts load either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GhostBatchNorm1d", "GhostBatchNorm2d", "convert_ghost_batchnorm", "check_group_size"]


def check_group_size(name: str, value: object) -> int:
    """``value`` as a positive int, or a clear error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


class _GhostBatchNorm:
    """The forward shared by the 1-d and 2-d classes (mixed in before the torch BatchNorm class)."""

    group_size: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        batch = x.shape[0]
        if not self.training or batch == self.group_size:
            return super().forward(x)
        if batch % self.group_size:
            raise ValueError(f"{type(self).__name__}: the batch ({batch}) must be a multiple of group_size "
                             f"({self.group_size}) in training (one BatchNorm group per DataParallel shard)")
        # The momentum as nn.BatchNorm computes it; num_batches_tracked counts forwards, as replica 0's did.
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        groups = x.split(self.group_size)
        # Group 0 updates the running statistics (replica 0's in-place update); the others only normalise.
        out = [F.batch_norm(groups[0], self.running_mean, self.running_var, self.weight, self.bias, True, factor,
                            self.eps)]
        out += [F.batch_norm(g, None, None, self.weight, self.bias, True, 0.0, self.eps) for g in groups[1:]]
        return torch.cat(out)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, group_size={self.group_size}"


class GhostBatchNorm1d(_GhostBatchNorm, nn.BatchNorm1d):
    """BatchNorm1d with statistics per group of ``group_size`` samples in training (see the module docstring).

    Shape: (N, C) or (N, C, L), N a multiple of group_size in training.
    """

    def __init__(self, num_features: int, group_size: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.group_size = check_group_size("group_size", group_size)


class GhostBatchNorm2d(_GhostBatchNorm, nn.BatchNorm2d):
    """BatchNorm2d with statistics per group of ``group_size`` samples in training (see the module docstring).

    Shape: (N, C, H, W), N a multiple of group_size in training.
    """

    def __init__(self, num_features: int, group_size: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.group_size = check_group_size("group_size", group_size)


_GHOST = {nn.BatchNorm1d: GhostBatchNorm1d, nn.BatchNorm2d: GhostBatchNorm2d}


def convert_ghost_batchnorm(module: nn.Module, group_size: int) -> nn.Module:
    """Replace every BatchNorm1d/BatchNorm2d in ``module`` (in place, and returned) by its ghost version with
    ``group_size``, keeping its parameters, buffers, momentum and eps (the same tensors)."""
    group_size = check_group_size("group_size", group_size)
    if type(module) in _GHOST:
        return _ghost_copy(module, group_size)
    for name, child in module.named_children():
        converted = convert_ghost_batchnorm(child, group_size)
        if converted is not child:
            setattr(module, name, converted)
    return module


def _ghost_copy(bn: nn.BatchNorm1d | nn.BatchNorm2d, group_size: int) -> nn.Module:
    ghost = _GHOST[type(bn)](bn.num_features, group_size, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                             track_running_stats=bn.track_running_stats)
    # Share the very tensors, so the optimiser or any other reference to them keeps working.
    for name in ("weight", "bias"):
        setattr(ghost, name, getattr(bn, name))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        ghost.register_buffer(name, getattr(bn, name))
    ghost.train(bn.training)
    return ghost
