"""The ``bdb-ext`` command line: train, eval, demo, export (also ``python -m bdb_ext``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import demo, evaluate, export, train

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bdb-ext",
        description="Batch DropBlock network (Dai et al., ICCV 2019) with fused C++/CUDA kernels. "
                    "Start with `bdb-ext demo` (offline, a few CPU minutes).")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (train, evaluate, demo, export):
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default sys.argv[1:]); returns the exit status.

    Bad settings (unknown fields, wrong types or values, missing data) end with a one-line error and status 2.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        print(f"bdb-ext {args.command}: error: {error}", file=sys.stderr)
        return 2
