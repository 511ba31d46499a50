"""The ``bdb-ext`` command line: train, eval, demo, export (also ``python -m bdb_ext``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import demo_command, eval_command, export_command, train_command

__all__ = ["main", "build_parser", "USER_ERRORS", "one_line"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bdb-ext",
        description="Batch DropBlock network (Dai et al., ICCV 2019) with fused C++/CUDA kernels. "
                    "Start with `bdb-ext demo` (offline, a few CPU minutes).")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (train_command, eval_command, demo_command, export_command):
        module.add_parser(subparsers)
    return parser


#: What a user's mistake raises: a bad setting or argument (ValueError, TypeError), a file that is missing, is a
#: folder, is corrupt or cannot be written (OSError and its subclasses), an optional dependency that is not installed
#: (ImportError). Everything else (RuntimeError, KeyError, AttributeError, ...) is a bug in bdb_ext or below it and
#: keeps its traceback.
USER_ERRORS = (ValueError, TypeError, OSError, ImportError)


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line.

    An exception raised in a DataLoader worker arrives re-raised with the worker's whole traceback as its message;
    the last line of that traceback is the original "Type: message", which is what the user needs.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if any(line.startswith("Original Traceback") for line in lines):
        return lines[-1]
    return " ".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default sys.argv[1:]); returns the exit status.

    Every user error (:data:`USER_ERRORS`: bad settings, unknown fields, missing, corrupt or unwritable files, a
    device that does not exist) ends with one line on stderr and status 2, for every command; a bug keeps its
    traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as error:
        print(f"bdb-ext {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
