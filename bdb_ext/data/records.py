"""The record every data set yields, and the relabelling rule shared by all of them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["ImageRecord", "relabel", "IMAGE_EXTENSIONS"]

#: File suffixes (lower case) treated as images when a folder is scanned.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class ImageRecord(NamedTuple):
    """One image of a data set.

    ``path`` is an absolute or root-relative file path, ``pid`` the identity (re-ID) or class (metric learning),
    ``camid`` the 0-based camera index, or -1 when the data set has no cameras.
    """

    path: str
    pid: int
    camid: int


def relabel(records: Iterable[ImageRecord]) -> list[ImageRecord]:
    """Map the pids of ``records`` onto 0..n-1 in increasing order of the original pid.

    Classifiers need contiguous labels; sorting keeps the mapping independent of file order.
    """
    records = list(records)
    mapping = {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}
    return [r._replace(pid=mapping[r.pid]) for r in records]

