"""Configuration presets shipped with the package (JSON files beside this module).

Each preset is a partial :class:`bdb_ext.engine.TrainConfig`: the fields it names replace the defaults. Keys starting
with "_" are comments. ``<dataset>`` is bdb_ext's recipe for a data set; ``<dataset>-release`` reproduces the run
behind the official release's published number (see docs/reproducing.md).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["preset_names", "load_preset", "describe_presets", "preset_for_dataset", "dataset_recipe"]

RELEASE_SUFFIX = "-release"


def preset_names() -> list[str]:
    """Names of the shipped presets (market1501, dukemtmc, cuhk03-detected, ..., demo)."""
    return sorted(p.name[:-5] for p in resources.files(__package__).iterdir() if p.name.endswith(".json"))


def _read(name: str) -> dict[str, Any]:
    if not isinstance(name, str):
        raise TypeError(f"preset name must be a str, got {type(name).__name__}")
    if name not in preset_names():
        raise ValueError(f"unknown preset {name!r}; shipped presets: {', '.join(preset_names())}")
    return json.loads(resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8"))


def load_preset(name: str) -> dict[str, Any]:
    """The fields of preset ``name`` (comments removed)."""
    return {k: v for k, v in _read(name).items() if not k.startswith("_")}


def describe_presets() -> str:
    """One line per preset: its name and what it is for."""
    width = max(map(len, preset_names()))
    return "\n".join(f"  {name:<{width}}  {_read(name).get('_about', '')}" for name in preset_names())


def preset_for_dataset(dataset: str, release: bool = False) -> str | None:
    """The preset made for ``dataset``: ``<dataset>-release`` if ``release`` (and shipped), else ``<dataset>``;
    None when no preset is made for it."""
    names = preset_names()
    for name in ([dataset + RELEASE_SUFFIX] if release else []) + [dataset]:
        if name in names and load_preset(name).get("dataset") == dataset:
            return name
    return None


def dataset_recipe(dataset: str) -> str | None:
    """The recipe ("person" or "metric") of the presets made for ``dataset``; None when no preset is."""
    name = preset_for_dataset(dataset)
    return None if name is None else load_preset(name).get("recipe", "person")
