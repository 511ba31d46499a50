"""The ResNet trunk of BDBNet: torchvision's ResNet conv1..layer4 with the last stride set to 1.

Pretrained ImageNet weights come from torchvision's download cache or an explicit file; this module never
downloads (the machines it runs on may be offline), and says how to get the file when it is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision import models

__all__ = ["BACKBONES", "build_trunk", "trunk_channels", "pretrained_weights_path"]

#: Backbone name -> (torchvision builder, weights enum member, output channels of layer4).
BACKBONES: dict[str, tuple] = {
    "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1, 512),
    "resnet34": (models.resnet34, models.ResNet34_Weights.IMAGENET1K_V1, 512),
    "resnet50": (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V1, 2048),
    "resnet101": (models.resnet101, models.ResNet101_Weights.IMAGENET1K_V1, 2048),
}


def _check_backbone(backbone: object) -> str:
    if not isinstance(backbone, str):
        raise TypeError(f"backbone must be a str, got {type(backbone).__name__}")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
    return backbone


def trunk_channels(backbone: str) -> int:
    """Channels of the trunk's output map (2048 for ResNet-50/101, 512 for ResNet-18/34)."""
    return BACKBONES[_check_backbone(backbone)][2]


def pretrained_weights_path(backbone: str) -> Path:
    """Where torchvision's cache keeps the ImageNet weights of ``backbone`` ($TORCH_HOME/hub/checkpoints/...)."""
    weights = BACKBONES[_check_backbone(backbone)][1]
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _load_state_dict(backbone: str, pretrained: bool | str | os.PathLike) -> dict[str, torch.Tensor]:
    if pretrained is True:
        path = pretrained_weights_path(backbone)
        if not path.is_file():
            url = BACKBONES[backbone][1].url
            raise FileNotFoundError(
                f"pretrained ImageNet weights for {backbone} are not in torchvision's cache ({path}) and bdb_ext "
                f"does not download them. Fetch {url} on a machine with internet access and copy it there (or run "
                f"`python -c \"import torchvision; torchvision.models.{backbone}(weights='IMAGENET1K_V1')\"` "
                f"there), pass the file's path as pretrained=..., or use pretrained=False to train from scratch.")
    else:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained: weights file {str(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"pretrained: {str(path)!r} does not hold a state dict")
    return state


def build_trunk(backbone: str = "resnet50", pretrained: bool | str | os.PathLike = True) -> nn.Sequential:
    """conv1, bn1, relu, maxpool, layer1..layer4 of a torchvision ResNet, with layer4's stride 1.

    A stride-1 layer4 doubles the final map (384x128 input -> 24x8 instead of 12x4), which BDB needs so that the
    dropped block can cover whole rows of a usefully fine map.

    Args:
        backbone: "resnet18", "resnet34", "resnet50" or "resnet101".
        pretrained: True for torchvision's cached ImageNet weights, False for random init, or a path to a
            torchvision-format state dict file.

    Returns:
        nn.Sequential mapping (N, 3, H, W) float images to (N, C, ceil(H/16), ceil(W/16)), C = trunk_channels.
    """
    backbone = _check_backbone(backbone)
    if not isinstance(pretrained, (bool, str, os.PathLike)):
        raise TypeError(f"pretrained must be a bool or a file path, got {type(pretrained).__name__}")
    net = BACKBONES[backbone][0](weights=None)
    if pretrained is not False:
        state = _load_state_dict(backbone, pretrained)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise ValueError(f"pretrained: the weights do not fit {backbone} (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]})")
    first_block = net.layer4[0]
    for module in first_block.modules():
        # The downsampling block carries the stride twice: its 3x3 (or first) conv and its shortcut conv.
        if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
            module.stride = (1, 1)
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
