"""Models: BDBNet, its ResNet trunk, ghost BatchNorm, and loading the official release's checkpoints."""

from .backbone import BACKBONES, build_trunk, pretrained_weights_path, trunk_channels
from .bdbnet import BDBNet, BDBOutput
from .ghost_batchnorm import GhostBatchNorm1d, GhostBatchNorm2d, convert_ghost_batchnorm
from .official_checkpoint import load_official_checkpoint, official_to_bdbnet_state_dict

__all__ = ["BDBNet", "BDBOutput", "BACKBONES", "build_trunk", "pretrained_weights_path", "trunk_channels",
           "GhostBatchNorm1d", "GhostBatchNorm2d", "convert_ghost_batchnorm", "load_official_checkpoint",
           "official_to_bdbnet_state_dict"]
