"""Reading the whitespace-separated list files that the metric-learning data sets ship."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

__all__ = ["read_rows"]


def read_rows(path: Path, num_fields: int, dataset: str, expected: str, skip: int = 0) -> Iterator[list[str]]:
    """Yield the fields of every non-empty line after the first ``skip`` lines.

    Raises ValueError naming the file, the line and the expected form when a line has a different field count.
    """
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if line_no <= skip:
                continue
            fields = line.split()
            if not fields:
                continue
            if len(fields) != num_fields:
                raise ValueError(f"{dataset}: malformed line {line_no} of {str(path)!r}: expected {expected!r}, "
                                 f"got {line.strip()!r}")
            yield fields


def parse_int(value: str, path: Path, dataset: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{dataset}: {str(path)!r} has a non-integer {what} {value!r}") from None
