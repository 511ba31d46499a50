"""Data sets stored in the Market-1501 layout: bounding_box_train/, query/, bounding_box_test/ with names
``<pid>_c<camera>...`` (Market-1501, DukeMTMC-reID, CUHK03-NP, and any folder laid out the same way)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..records import ImageRecord
from .base import ReIDDataset, list_images, resolve_root

__all__ = ["MarketLayoutFolder", "Market1501", "DukeMTMCreID", "parse_market_name", "read_market_folder"]

# pid (-1 for junk), then the camera number: every digit of it, so that c12 reads as camera 12 in a folder of ten or
# more cameras (torchreid's one-digit pattern reads it as camera 1). Market names continue with 's<sequence>', Duke
# names with '_f<frame>', so the digits end at a non-digit either way.
_NAME_PATTERN = re.compile(r"(-?\d+)_c(\d+)")

SPLIT_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")


def parse_market_name(filename: str, num_cameras: int | None = None) -> tuple[int, int]:
    """Return ``(pid, camid)`` from a Market-style file name such as ``0002_c1s1_000451_03.jpg``.

    camid is 0-based. Raises ValueError when the name does not start with ``<pid>_c<camera>``, the pid is below
    -1, or the camera is outside 1..num_cameras.
    """
    if not isinstance(filename, str):
        raise TypeError(f"filename must be a str, got {type(filename).__name__}")
    if num_cameras is not None and (isinstance(num_cameras, bool) or not isinstance(num_cameras, int)
                                    or num_cameras < 1):
        raise ValueError(f"num_cameras must be None or a positive int, got {num_cameras!r}")
    match = _NAME_PATTERN.match(filename)
    if match is None:
        raise ValueError(f"malformed image name {filename!r}: expected '<pid>_c<camera>...', e.g. "
                         "'0002_c1s1_000451_03.jpg'")
    pid, cam = int(match.group(1)), int(match.group(2))
    if pid < -1:
        raise ValueError(f"malformed image name {filename!r}: pid must be -1 (junk) or >= 0, got {pid}")
    if cam < 1 or (num_cameras is not None and cam > num_cameras):
        expected = f"1..{num_cameras}" if num_cameras is not None else ">= 1"
        raise ValueError(f"malformed image name {filename!r}: camera must be {expected}, got {cam}")
    return pid, cam - 1


def read_market_folder(folder: Path, num_cameras: int | None = None) -> list[ImageRecord]:
    """Records of every image in ``folder``; junk images (pid -1) are dropped, distractors (pid 0) kept."""
    records = []
    for path in list_images(folder):
        pid, camid = parse_market_name(path.name, num_cameras)
        if pid == -1:
            continue
        records.append(ImageRecord(str(path), pid, camid))
    return records


class MarketLayoutFolder(ReIDDataset):
    """Any folder in Market-1501 layout: ``root/bounding_box_train``, ``root/query``, ``root/bounding_box_test``.

    Args:
        root: the folder (or a parent holding it under one of ``subfolders``).
        num_cameras: if given, camera numbers in names must lie in 1..num_cameras.
        subfolders: nestings under ``root`` that are also searched for the three folders.
    """

    name = "market-layout folder"

    def __init__(self, root: str | os.PathLike, num_cameras: int | None = None,
                 subfolders: tuple[str, ...] = ()) -> None:
        base = resolve_root(root, type(self).__name__, SPLIT_FOLDERS, subfolders)
        self.root = base
        train, query, gallery = (read_market_folder(base / sub, num_cameras) for sub in SPLIT_FOLDERS)
        super().__init__(train, query, gallery)


class Market1501(MarketLayoutFolder):
    """Market-1501 (751 train ids, 3,368 queries, 15,913 gallery images without junk; 6 cameras).

    ``root`` holds the three folders directly, or ``Market-1501-v15.09.15/`` (as unpacked), or
    ``market1501/[Market-1501-v15.09.15/]`` (as torchreid stores it).
    """

    name = "market1501"

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__(root, num_cameras=6, subfolders=(
            "Market-1501-v15.09.15", "market1501", "market1501/Market-1501-v15.09.15"))


class DukeMTMCreID(MarketLayoutFolder):
    """DukeMTMC-reID (702 train ids, 2,228 queries, 17,661 gallery images; 8 cameras).

    ``root`` holds the three folders directly, or ``DukeMTMC-reID/``, or ``dukemtmc-reid/DukeMTMC-reID/``.
    """

    name = "dukemtmc"

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__(root, num_cameras=8, subfolders=(
            "DukeMTMC-reID", "dukemtmc-reid", "dukemtmc-reid/DukeMTMC-reID"))
