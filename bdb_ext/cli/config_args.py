"""Command-line access to every TrainConfig field: ``--config PRESET``, one flag per field, and ``--set k=v``.

Precedence: field defaults < preset < per-field flags < ``--set`` (last one wins).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from ..configs import describe_presets, load_preset, preset_names
from ..engine.config import TrainConfig, config_from_dict, field_types, parse_field_value

__all__ = ["add_config_arguments", "config_from_args"]

_PREFIX = "field__"


def _type_name(kind: Any) -> str:
    text = getattr(kind, "__name__", None) or str(kind)
    return str(kind).replace("typing.", "") if typing.get_args(kind) else text


def add_config_arguments(parser: argparse.ArgumentParser, default_preset: str | None = None,
                         with_preset: bool = True) -> None:
    """Add --config (if ``with_preset``), --set and a --<field> flag for every TrainConfig field to ``parser``."""
    if with_preset:
        parser.add_argument("--config", default=default_preset, metavar="PRESET", choices=preset_names(),
                            help="a shipped preset: " + ", ".join(preset_names())
                                 + (f" (default {default_preset})" if default_preset else ""))
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
        group.add_argument(f"--{field.name.replace('_', '-')}", dest=_PREFIX + field.name,
                           default=argparse.SUPPRESS, metavar=_type_name(kind).upper(),
                           help=f"(default {getattr(defaults, field.name)!r})", **flag_form)


def config_from_args(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> TrainConfig:
    """The TrainConfig that ``args`` describes (``extra`` fields go between the preset and the flags)."""
    preset = getattr(args, "config", None)
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
