"""One BDB training step (forward, the four losses, backward, Adam step), fused or reference path.

- fused: BDBNet(fused=True) (the drop_pool kernel) + BDBLoss (the batch_hard_triplet_loss kernel);
- reference: BDBNet(fused=False) (the reference code's mask, multiply, AdaptiveMaxPool2d) with the
  reference code's triplet loss and the same label-smoothed cross entropies.

Used by bench_train (timing, the paper's shape) and runtime (the step under sync-debug mode).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from bdb_ext import reference

__all__ = ["PAPER", "REHEARSAL", "StepShape", "build_train_step"]


@dataclass(frozen=True)
class StepShape:
    backbone: str
    ids: int  # P identities ...
    k: int  # ... x K images each
    height: int
    width: int

    @property
    def batch(self) -> int:
        return self.ids * self.k


PAPER = StepShape("resnet50", 32, 4, 384, 128)
REHEARSAL = StepShape("resnet18", 2, 2, 32, 16)


def _reference_loss(cross_entropy: nn.Module) -> Callable[[object, torch.Tensor], torch.Tensor]:
    def loss(out, labels: torch.Tensor) -> torch.Tensor:
        return (reference.triplet_loss_reference_code(out.global_feature.float(), labels)
                + reference.triplet_loss_reference_code(out.bdb_feature.float(), labels)
                + cross_entropy(out.global_logits.float(), labels) + cross_entropy(out.bdb_logits.float(), labels))
    return loss


def build_train_step(fused: bool, shape: StepShape, device: str, amp_dtype: torch.dtype | None,
                     channels_last: bool, seed: int = 0) -> Callable[[], torch.Tensor]:
    """A closure running one training step; returns the (detached) total loss as a device tensor.

    images: (P*K, 3, height, width) float32 (channels_last if asked), labels P x K int64; the model
    runs under autocast(amp_dtype) when given. The rectangle is drawn on ``device`` each step from a
    generator seeded with ``seed``, so two steps built alike drop the same blocks.
    """
    from bdb_ext.losses.bdb_loss import BDBLoss
    from bdb_ext.models import BDBNet

    torch.manual_seed(seed)
    model = BDBNet(shape.ids, shape.backbone, pretrained=False, fused=fused,
                   generator=torch.Generator(device).manual_seed(seed + 1)).to(device)
    images = torch.randn(shape.batch, 3, shape.height, shape.width, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    model.train()
    labels = torch.arange(shape.ids, device=device).repeat_interleave(shape.k)
    bdb_loss = BDBLoss()
    ref_loss = _reference_loss(nn.CrossEntropyLoss(label_smoothing=0.1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
    device_type = torch.device(device).type

    def step() -> torch.Tensor:
        with torch.autocast(device_type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            out = model(images)
            loss = bdb_loss(out, labels).total if fused else ref_loss(out, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step
