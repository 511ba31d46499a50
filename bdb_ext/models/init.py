"""The initialisation of BDBNet's heads, as the reference code's ``weights_init_kaiming`` does it."""

from __future__ import annotations

from torch import nn

__all__ = ["init_head"]


def init_head(module: nn.Module) -> None:
    """Kaiming-normal Linear (fan_out) and Conv (fan_in) weights, zero biases; BatchNorm weight ~ N(1, 0.02), bias 0.

    Apply with ``module.apply(init_head)`` to the reduction layers and classifiers only; the trunk keeps its
    (pretrained or torchvision) init and the extra Bottleneck PyTorch's default.
    """
    if isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight, a=0, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
