"""MSMT17 (V1 or V2), read from its list files (``list_train.txt`` etc., lines ``<relative path> <pid>``)."""

from __future__ import annotations

import os
from pathlib import Path

from ..records import ImageRecord
from .base import ReIDDataset, root_folder

__all__ = ["MSMT17"]

# (train folder, test folder) per release; V2 ships masked images in differently named folders.
_VERSIONS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}
_LISTS = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")
_NUM_CAMERAS = 15


def _read_list(list_path: Path, image_dir: Path) -> list[ImageRecord]:
    records = []
    with open(list_path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            where = f"{str(list_path)!r} line {line_no}"
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError(f"MSMT17: malformed entry at {where}: expected '<relative path> <pid>', got "
                                 f"{line.strip()!r}")
            rel, pid = parts[0], int(parts[1])
            # Names look like 0000_000_01_0303morning_0015_0.jpg: the third field is the 1-based camera.
            fields = Path(rel).name.split("_")
            if len(fields) < 3 or not fields[2].isdigit() or not 1 <= int(fields[2]) <= _NUM_CAMERAS:
                raise ValueError(f"MSMT17: malformed image name at {where}: expected "
                                 f"'<pid>_<index>_<camera 01-15>_...', got {Path(rel).name!r}")
            records.append(ImageRecord(str(image_dir / rel), pid, int(fields[2]) - 1))
    return records


class MSMT17(ReIDDataset):
    """MSMT17 (1,041 train ids, 15 cameras).

    ``root`` holds ``MSMT17_V1/`` or ``MSMT17_V2/`` (also under ``msmt17/``), or is that folder itself.
    ``include_val`` adds list_val.txt to training; off by default, as published results train without it.
    """

    name = "msmt17"

    def __init__(self, root: str | os.PathLike, include_val: bool = False) -> None:
        root = root_folder(root, "MSMT17")
        candidates = [root] + [root / parent / version for parent in ("", "msmt17") for version in _VERSIONS]
        required_lists = ("list_train.txt", "list_query.txt", "list_gallery.txt")
        found = next(((base, train_dir, test_dir) for base in candidates for train_dir, test_dir in _VERSIONS.values()
                      if (base / train_dir).is_dir() and (base / test_dir).is_dir()
                      and all((base / name).is_file() for name in required_lists)), None)
        if found is None:
            raise FileNotFoundError(
                f"MSMT17: expected 'MSMT17_V1/' (train/, test/) or 'MSMT17_V2/' (mask_train_v2/, mask_test_v2/) "
                f"with {', '.join(_LISTS)} under {str(root)!r} (or under 'msmt17/'); none was found")
        base, train_dir, test_dir = found
        self.root = base
        train = _read_list(base / "list_train.txt", base / train_dir)
        if include_val:
            val_list = base / "list_val.txt"
            if not val_list.is_file():
                raise FileNotFoundError(f"MSMT17: include_val=True needs {str(val_list)!r}")
            train += _read_list(val_list, base / train_dir)
        query = _read_list(base / "list_query.txt", base / test_dir)
        gallery = _read_list(base / "list_gallery.txt", base / test_dir)
        super().__init__(train, query, gallery)
