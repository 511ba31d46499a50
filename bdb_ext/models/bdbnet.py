"""BDBNet: the two-branch Batch DropBlock network (Dai et al., ICCV 2019)."""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

from .. import reference
from ..layers import BatchDropPool, draw_drop_rect
from .backbone import build_trunk, trunk_channels
from .ghost_batchnorm import check_group_size, convert_ghost_batchnorm
from .init import init_head

__all__ = ["BDBNet", "BDBOutput"]


class BDBOutput(NamedTuple):
    """What a training-mode forward returns: everything the four-term loss needs, plus the rectangle.

    global_feature: (N, global_dim) float, the global branch's feature (triplet loss input).
    bdb_feature: (N, bdb_dim) float, the BDB branch's feature (triplet loss input).
    global_logits, bdb_logits: (N, num_classes) float, the classifiers' outputs (cross-entropy inputs).
    rect: (4,) int64 [top, left, rows, cols], the block dropped from every map of the batch; with
        ``rect_group_size`` K, (N / K, 4): one block per group of K consecutive samples.
    """

    global_feature: torch.Tensor
    bdb_feature: torch.Tensor
    global_logits: torch.Tensor
    bdb_logits: torch.Tensor
    rect: torch.Tensor


class BDBNet(nn.Module):
    """The Batch DropBlock network: a ResNet trunk (last stride 1) feeding a global and a BDB branch.

    - global branch: global average pool -> 1x1 conv (C -> 512, bias) -> BatchNorm2d -> ReLU -> 512-d feature,
      and a Linear classifier;
    - BDB branch: an extra, randomly initialised Bottleneck (C -> C) -> Batch DropBlock fused with global max
      pooling (one rectangle for the whole batch, training only) -> Linear (C -> 1024) -> BatchNorm1d -> ReLU
      -> 1024-d feature, and a Linear classifier.

    C is 2048 for ResNet-50/101 and 512 for ResNet-18/34 (whose extra Bottleneck then has 128 planes).

    Args:
        num_classes: identities (or classes) of the training set, > 0.
        backbone: "resnet18", "resnet34", "resnet50" or "resnet101" (torchvision).
        pretrained: True for torchvision's cached ImageNet weights (never downloaded; a clear error says how to
            get them), False for random init, or the path of a torchvision-format weights file.
        h_ratio, w_ratio: the dropped block's height and width as fractions of the map (re-ID: 0.33 x 1.0).
        fused: True runs the fused ``drop_pool`` kernel; False the eager reference ops (mask, multiply, max
            pool), which give the same outputs and gradients for the same rectangle.
        global_dim, bdb_dim: feature sizes of the two branches (the paper: 512 and 1024).
        generator: optional torch.Generator (on the model's device) that draws the rectangles.
        block_rounding: how the block's size follows from the ratios: "round" (round(h_ratio * H), the official
            code since 2019-03-15 and the default) or "floor" (int(h_ratio * H), the official code before it,
            which trained the released Market-1501 model: 0.2 x 24 rows -> 4).
        bn_group_size: None, or K: every BatchNorm computes its training statistics over groups of K consecutive
            samples and updates its running statistics from the first group only, as K-image shards of
            nn.DataParallel did (see :mod:`bdb_ext.models.ghost_batchnorm`). The batch must divide by K.
        rect_group_size: None, or K: one rectangle per group of K consecutive samples, as each DataParallel
            replica drew its own. ``rect_group_shard`` = (rank, world) makes ``world`` processes that draw in
            lock-step take consecutive slices of one sequence of rectangles (so R processes x G groups draw as
            many distinct rectangles as R x G replicas did); the trainer sets it under torch.distributed.

    Forward:
        ``model(images, rect=None)`` with images (N, 3, H, W) float. In training returns a :class:`BDBOutput`
        (the rectangle is drawn unless given); in eval returns the (N, global_dim + bdb_dim) test feature,
        1536-d by default, not normalised.
    """

    def __init__(self, num_classes: int, backbone: str = "resnet50", pretrained: bool | str | os.PathLike = True,
                 h_ratio: float = 0.33, w_ratio: float = 1.0, fused: bool = True, *, global_dim: int = 512,
                 bdb_dim: int = 1024, generator: torch.Generator | None = None, block_rounding: str = "round",
                 bn_group_size: int | None = None, rect_group_size: int | None = None) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("global_dim", global_dim), ("bdb_dim", bdb_dim)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if not isinstance(fused, bool):
            raise TypeError(f"fused must be a bool, got {type(fused).__name__}")
        if block_rounding not in ("round", "floor"):
            raise ValueError(f"block_rounding must be 'round' or 'floor', got {block_rounding!r}")
        self.block_rounding = block_rounding
        self.bn_group_size = None if bn_group_size is None else check_group_size("bn_group_size", bn_group_size)
        self.rect_group_size = (None if rect_group_size is None
                                else check_group_size("rect_group_size", rect_group_size))
        self.rect_group_shard: tuple[int, int] = (0, 1)
        channels = trunk_channels(backbone)
        self.num_classes = num_classes
        self.backbone_name = backbone
        self.fused = fused
        self.feature_dim = global_dim + bdb_dim

        self.trunk = build_trunk(backbone, pretrained)

        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.global_reduction = nn.Sequential(nn.Conv2d(channels, global_dim, 1), nn.BatchNorm2d(global_dim),
                                              nn.ReLU(inplace=True))
        self.global_classifier = nn.Linear(global_dim, num_classes)

        # Bottleneck's expansion is 4, so planes = C / 4 keeps C channels (and needs no shortcut projection).
        self.bdb_block = Bottleneck(channels, channels // 4)
        self.drop_pool = BatchDropPool(h_ratio, w_ratio, mode="max", generator=generator)
        self.bdb_reduction = nn.Sequential(nn.Linear(channels, bdb_dim), nn.BatchNorm1d(bdb_dim),
                                           nn.ReLU(inplace=True))
        self.bdb_classifier = nn.Linear(bdb_dim, num_classes)

        for head in (self.global_reduction, self.global_classifier, self.bdb_reduction, self.bdb_classifier):
            head.apply(init_head)
        if self.bn_group_size is not None:
            convert_ghost_batchnorm(self, self.bn_group_size)

    def feature_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(trunk map (N, C, h, w), BDB-branch map before the drop (N, C, h, w)); h, w = H/16, W/16 rounded up."""
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
        trunk_map = self.trunk(images)
        return trunk_map, self.bdb_block(trunk_map)

    def forward(self, images: torch.Tensor, rect: torch.Tensor | None = None) -> BDBOutput | torch.Tensor:
        trunk_map, bdb_map = self.feature_maps(images)
        global_feature = self.global_reduction(self.global_pool(trunk_map)).flatten(1)
        if not self.training:
            # Eval: no drop, plain global max pooling; the test feature is both branches side by side.
            bdb_feature = self.bdb_reduction(self.drop_pool(bdb_map))
            return torch.cat([global_feature, bdb_feature], dim=1)
        if rect is None:
            rect = self.draw_rect(bdb_map)
        pooled = self._drop_pool(bdb_map, rect)
        bdb_feature = self.bdb_reduction(pooled)
        return BDBOutput(global_feature, bdb_feature, self.global_classifier(global_feature),
                         self.bdb_classifier(bdb_feature), rect)

    def draw_rect(self, bdb_map: torch.Tensor) -> torch.Tensor:
        """Fresh rectangle(s) for a (N, C, H, W) BDB-branch map: (4,) int64 [top, left, rows, cols], or
        (N / rect_group_size, 4) with ``rect_group_size`` (drawn with the drop layer's generator)."""
        height, width = bdb_map.shape[-2:]
        h_ratio, w_ratio = self.drop_pool.h_ratio, self.drop_pool.w_ratio

        def one() -> torch.Tensor:
            return draw_drop_rect(height, width, h_ratio, w_ratio, bdb_map.device, self.drop_pool.generator,
                                  self.block_rounding)

        if self.rect_group_size is None:
            return one()
        groups = self._num_groups(bdb_map.shape[0])
        rank, world = self.rect_group_shard
        return torch.stack([one() for _ in range(groups * world)])[rank * groups:(rank + 1) * groups]

    def _num_groups(self, batch: int) -> int:
        if batch % self.rect_group_size:
            raise ValueError(f"BDBNet: the batch ({batch}) must be a multiple of rect_group_size "
                             f"({self.rect_group_size}) in training")
        return batch // self.rect_group_size

    def _drop_pool(self, bdb_map: torch.Tensor, rect: torch.Tensor) -> torch.Tensor:
        """Drop ``rect`` (4,) from the whole batch, or row g of ``rect`` (G, 4) from the g-th group of samples,
        then global max pooling: (N, C, H, W) -> (N, C)."""
        def drop(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            return self.drop_pool(x, r) if self.fused else reference.drop_pool(x, r, "max")

        if rect.dim() == 1:
            return drop(bdb_map, rect)
        if rect.dim() != 2 or rect.shape[1] != 4:
            raise ValueError(f"rect must have shape (4,) or (groups, 4), got {tuple(rect.shape)}")
        if bdb_map.shape[0] % rect.shape[0]:
            raise ValueError(f"rect has {rect.shape[0]} rows, which do not split the batch of {bdb_map.shape[0]} "
                             "into equal groups")
        chunks = bdb_map.split(bdb_map.shape[0] // rect.shape[0])
        return torch.cat([drop(chunk, r) for chunk, r in zip(chunks, rect.unbind(0))])

    def extra_repr(self) -> str:
        extra = f", block_rounding={self.block_rounding!r}" if self.block_rounding != "round" else ""
        extra += f", bn_group_size={self.bn_group_size}" if self.bn_group_size else ""
        extra += f", rect_group_size={self.rect_group_size}" if self.rect_group_size else ""
        return f"backbone={self.backbone_name!r}, num_classes={self.num_classes}, fused={self.fused}{extra}"
