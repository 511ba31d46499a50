"""Command-line access to every TrainConfig field: ``--config PRESET``, one flag per field, and ``--set k=v``.

Precedence: field defaults < preset < per-field flags < ``--set`` (last one wins).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from typing import Any

from ..configs import dataset_recipe, describe_presets, load_preset, preset_for_dataset, preset_names
from ..engine.config import TrainConfig, config_from_dict, field_types, parse_field_value

__all__ = ["add_config_arguments", "config_from_args", "resolve_preset"]

_PREFIX = "field__"
#: Extra spellings of field flags.
_ALIASES = {"eval_protocol": ("--protocol",)}


def _type_name(kind: Any) -> str:
    text = getattr(kind, "__name__", None) or str(kind)
    return str(kind).replace("typing.", "") if typing.get_args(kind) else text


def add_config_arguments(parser: argparse.ArgumentParser, default_preset: str | None = None,
                         with_preset: bool = True, preset_help: str = "") -> None:
    """Add --config (if ``with_preset``), --set and a --<field> flag for every TrainConfig field to ``parser``."""
    if with_preset:
        parser.add_argument("--config", default=default_preset, metavar="PRESET", choices=preset_names(),
                            help="a shipped preset: " + ", ".join(preset_names())
                                 + (f" (default {default_preset})" if default_preset else "") + preset_help)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field, e.g. --set epochs=10 --set margin=0.3 (repeatable)")
    group = parser.add_argument_group(
        "config fields", "each overrides the preset; booleans take true/false, lists comma-separated, optional "
                         "fields 'none'")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        kind = field_types()[field.name]
        # A bare boolean flag (``--sync-bn``) means true; ``--sync-bn false`` still works.
        flag_form = {"nargs": "?", "const": "true"} if kind is bool else {}
        flags = (f"--{field.name.replace('_', '-')}", *_ALIASES.get(field.name, ()))
        group.add_argument(*flags, dest=_PREFIX + field.name, default=argparse.SUPPRESS,
                           metavar=_type_name(kind).upper(),
                           help=f"(default {getattr(defaults, field.name)!r})", **flag_form)


def _flag_dataset(args: argparse.Namespace) -> str | None:
    """The data set named on the command line (--dataset or --set dataset=...), if any."""
    dataset = getattr(args, _PREFIX + "dataset", None)
    for item in getattr(args, "set", []):
        name, _, value = item.partition("=")
        if name.strip().replace("-", "_") == "dataset":
            dataset = value.strip()
    return dataset


def resolve_preset(args: argparse.Namespace, default: str | None, release: bool = False) -> str | None:
    """The preset to start from: ``--config`` if given, else the one made for ``--dataset`` (said on stderr), else
    ``default``.

    A wrong preset must not go unnoticed: ``--dataset X`` without ``--config`` and without a preset for X is an
    error, and so is a preset of the other recipe family (a person re-ID preset on a metric-learning data set or
    the reverse).
    """
    preset, dataset = getattr(args, "config", None), _flag_dataset(args)
    if dataset is None:
        return preset if preset is not None else default
    if preset is None:
        preset = preset_for_dataset(dataset, release=release)
        if preset is None:
            raise ValueError(f"no preset is made for --dataset {dataset!r}; name the recipe with --config PRESET "
                             f"(e.g. --config market1501 for a person re-ID set); presets: {', '.join(preset_names())}")
        if preset != default:
            print(f"bdb-ext: --dataset {dataset} without --config: using preset {preset!r}", file=sys.stderr)
        return preset
    recipe, wanted = load_preset(preset).get("recipe", "person"), dataset_recipe(dataset)
    if wanted is not None and recipe != wanted:
        raise ValueError(f"--config {preset} is a {recipe} preset but --dataset {dataset} needs the {wanted} recipe; "
                         f"use --config {preset_for_dataset(dataset)} (or another {wanted} preset)")
    return preset


def config_from_args(args: argparse.Namespace, extra: dict[str, Any] | None = None, *,
                     preset: str | None = None) -> TrainConfig:
    """The TrainConfig that ``args`` describes (``extra`` fields go between the preset and the flags).

    ``preset``: the preset to start from (see :func:`resolve_preset`); default ``args.config``.
    """
    preset = preset if preset is not None else getattr(args, "config", None)
    fields: dict[str, Any] = load_preset(preset) if preset else {}
    fields.update(extra or {})
    for key, value in vars(args).items():
        if key.startswith(_PREFIX):
            name = key[len(_PREFIX):]
            fields[name] = parse_field_value(name, value)
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        fields[name.strip().replace("-", "_")] = parse_field_value(name.strip().replace("-", "_"), value)
    return config_from_dict(fields)


def presets_epilog() -> str:
    return "presets:\n" + describe_presets()
