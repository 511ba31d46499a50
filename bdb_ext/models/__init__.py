"""Models: BDBNet and its ResNet trunk."""

from .backbone import BACKBONES, build_trunk, pretrained_weights_path, trunk_channels
from .bdbnet import BDBNet, BDBOutput

__all__ = ["BDBNet", "BDBOutput", "BACKBONES", "build_trunk", "pretrained_weights_path", "trunk_channels"]
