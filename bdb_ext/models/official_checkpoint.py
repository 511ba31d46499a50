"""Loading the official BDB release's checkpoints (daizuozhuo/batch-dropblock-network) into BDBNet.

The official ``main_reid.py`` saves ``{"state_dict": model.state_dict(), "epoch": N}`` with
``utils/serialization.save_checkpoint`` (``checkpoint_epN.pth.tar``, and a copy ``model_best.pth.tar``); the released
files (``market_953.pth.tar``, ``duke_887.pth.tar``, ``cuhk-label-794.pth.tar``, ...) are such files. The state
dict is the ``BFE`` module's (``models/networks.py``), saved from ``model.module`` under DataParallel, so without a
``module.`` prefix; a state dict saved from the DataParallel wrapper itself has the prefix, and both are read.

Official module -> BDBNet module (same layers, same order, so the 1536-d test features agree):

============================  ===============================================================  =====================
official                      what it is                                                       BDBNet
============================  ===============================================================  =====================
``backbone.0`` .. ``.6``      ResNet-50 conv1, bn1, relu, maxpool, layer1, layer2, layer3      ``trunk.0`` .. ``.6``
``res_part.0`` .. ``.2``      layer4 with stride 1 (torchvision Bottlenecks)                   ``trunk.7.0`` .. ``.2``
``global_reduction``          1x1 Conv 2048->512 (bias) + BatchNorm2d + ReLU                   ``global_reduction``
``global_softmax``            Linear(512, classes)                                             ``global_classifier``
``res_part2``                 the extra Bottleneck(2048, 512)                                  ``bdb_block``
``reduction``                 Linear(2048, 1024) + BatchNorm1d + ReLU                          ``bdb_reduction``
``softmax``                   Linear(1024, classes)                                            ``bdb_classifier``
============================  ===============================================================  =====================

``batch_crop`` (the drop) and the pooling layers have no state.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .bdbnet import BDBNet

__all__ = ["load_official_checkpoint", "official_to_bdbnet_state_dict", "OFFICIAL_PREFIXES"]

#: Official top-level prefix -> BDBNet prefix.
OFFICIAL_PREFIXES: dict[str, str] = {
    "backbone.": "trunk.",
    "res_part.": "trunk.7.",
    "global_reduction.": "global_reduction.",
    "global_softmax.": "global_classifier.",
    "res_part2.": "bdb_block.",
    "reduction.": "bdb_reduction.",
    "softmax.": "bdb_classifier.",
}

# Old PyTorch (0.4.0) BatchNorm had no num_batches_tracked; it does not affect the eval-mode output.
_OPTIONAL_SUFFIX = ".num_batches_tracked"


def _strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DataParallel's ``module.`` prefix when every key has it."""
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _rename(key: str) -> str | None:
    # Longest prefix first: "res_part2." must not be taken for "res_part." + "2.".
    for official in sorted(OFFICIAL_PREFIXES, key=len, reverse=True):
        if key.startswith(official):
            rest = key[len(official):]
            if official == "res_part." and not re.match(r"\d+\.", rest):
                return None
            return OFFICIAL_PREFIXES[official] + rest
    return None


def _official_name(key: str) -> str:
    """The official name of a BDBNet key (for messages)."""
    for official, ours in sorted(OFFICIAL_PREFIXES.items(), key=lambda item: len(item[1]), reverse=True):
        if key.startswith(ours):
            return official + key[len(ours):]
    return key


def _map_keys(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[str, torch.Tensor]]:
    """BDBNet key -> (official key, tensor); a clear error naming the keys that fit no official module."""
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise TypeError(f"state must be a mapping of str to tensors, got {type(state).__name__}")
    mapped: dict[str, tuple[str, torch.Tensor]] = {}
    foreign = []
    for key, value in _strip_module_prefix(state).items():
        new = _rename(key)
        if new is None or not isinstance(value, torch.Tensor):
            foreign.append(key)
        else:
            mapped[new] = (key, value)
    if foreign:
        raise ValueError(f"not an official BDB (BFE) state dict: {len(foreign)} keys fit none of its modules "
                         f"{sorted(OFFICIAL_PREFIXES)}: {sorted(foreign)[:10]}")
    return mapped


def _num_classes(mapped: Mapping[str, tuple[str, torch.Tensor]]) -> int:
    shapes = {name: tuple(mapped[f"{name}.weight"][1].shape) for name in ("global_classifier", "bdb_classifier")
              if f"{name}.weight" in mapped}
    if len(shapes) != 2:
        raise ValueError("not an official BDB (BFE) state dict: global_softmax.weight and softmax.weight are "
                         "needed to infer the number of classes; found "
                         f"{[mapped[f'{n}.weight'][0] for n in shapes] or 'neither'}")
    g_shape, b_shape = shapes["global_classifier"], shapes["bdb_classifier"]
    if len(g_shape) != 2 or len(b_shape) != 2 or g_shape[0] != b_shape[0] or g_shape[1] != 512 \
            or b_shape[1] != 1024:
        raise ValueError(f"official checkpoint: global_softmax.weight {g_shape} and softmax.weight {b_shape} must "
                         "be (classes, 512) and (classes, 1024)")
    return g_shape[0]


def official_to_bdbnet_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """(BDBNet state dict, num_classes) from the official BFE state dict (``module.`` prefix or not).

    Only renames and checks the classifiers; :func:`load_official_checkpoint` also checks completeness.

    Raises:
        ValueError: keys that are not the official BFE's (named), or classifiers that are not (classes, 512) and
            (classes, 1024) with the same number of classes.
    """
    mapped = _map_keys(state)
    return {k: v for k, (_, v) in mapped.items()}, _num_classes(mapped)


def load_official_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> BDBNet:
    """A ResNet-50 BDBNet (eval mode) holding the weights of an official release checkpoint.

    Args:
        path: a file saved by the official code: ``{"state_dict": ..., "epoch": N}`` (or a bare state dict),
            with or without DataParallel's ``module.`` prefix. Read with ``torch.load(weights_only=True)``, which
            runs no pickled code.
        map_location: where the tensors are loaded (and the model lives).

    Returns:
        BDBNet(num_classes inferred from the classifiers, "resnet50", h_ratio 0.33, w_ratio 1.0) in eval mode; its
        eval forward gives the official model's 1536-d test feature. ``model.official_epoch`` is the stored epoch
        (None if absent).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a state dict that is not the official BFE's: foreign keys or missing keys (named), or shapes
            that do not fit.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"official checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a pickle that needs code, or not a torch file at all
        raise ValueError(f"official checkpoint {str(path)!r} cannot be read as a weights-only torch file: "
                         f"{error}") from error
    epoch = None
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        epoch = checkpoint.get("epoch")
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"official checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, not a state dict")
    mapped = _map_keys(checkpoint)
    model = BDBNet(_num_classes(mapped), "resnet50", pretrained=False)
    expected = model.state_dict()
    unexpected = sorted(old for new, (old, _) in mapped.items() if new not in expected)
    if unexpected:
        raise ValueError(f"official checkpoint {str(path)!r} has {len(unexpected)} keys that ResNet-50 BDBNet does "
                         f"not have: {unexpected[:10]}")
    missing = [_official_name(k) for k in expected if k not in mapped and not k.endswith(_OPTIONAL_SUFFIX)]
    if missing:
        raise ValueError(f"official checkpoint {str(path)!r} is incomplete: {len(missing)} keys of the official "
                         f"BFE are missing: {missing[:10]}")
    wrong = [f"{old}: {tuple(v.shape)}, expected {tuple(expected[new].shape)}" for new, (old, v) in mapped.items()
             if v.shape != expected[new].shape]
    if wrong:
        raise ValueError(f"official checkpoint {str(path)!r} does not fit ResNet-50 BDBNet: {wrong[:10]}")
    state = {new: v for new, (_, v) in mapped.items()}
    for key, value in expected.items():
        if key not in state:  # only num_batches_tracked can be absent here (PyTorch 0.4.0 files)
            state[key] = torch.zeros_like(value)
    model.load_state_dict(state, strict=True)
    model.official_epoch = int(epoch) if isinstance(epoch, (int, torch.Tensor)) else None
    return model.to(map_location).eval()
