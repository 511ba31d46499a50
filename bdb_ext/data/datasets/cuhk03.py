"""CUHK03 under the new protocol (767 train / 700 test ids), from either of its two distributed forms.

1. CUHK03-NP folders: ``<root>/[cuhk03-np/]{detected,labeled}/`` in Market-1501 layout, cameras 1-2.
2. The original release: ``<root>/cuhk03_release/cuhk-03.mat`` (MATLAB v7.3, read with h5py) plus
   ``<root>/cuhk03_new_protocol_config_{detected,labeled}.mat`` (read with scipy). The images are written once as PNG
   files named ``<camera pair>_<pid:03d>_<view>_<image:02d>.png`` (torchreid's naming, which the config files use)
   into ``extract_dir`` (default ``<root>/images_<split>``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..records import ImageRecord
from .base import ReIDDataset, root_folder
from .market_layout import SPLIT_FOLDERS, read_market_folder

__all__ = ["CUHK03", "extract_cuhk03_images"]

_SPLITS = ("detected", "labeled")
_NP_PARENTS = ("", "cuhk03-np", "CUHK03-NP", "cuhk03_np")
_MAT_PARENTS = ("", "cuhk03")
_RAW_MAT = Path("cuhk03_release") / "cuhk-03.mat"
_IMAGES_PER_PERSON = 10  # cells per person in cuhk-03.mat: 5 per camera view


def _config_name(split: str) -> str:
    return f"cuhk03_new_protocol_config_{split}.mat"


def extract_cuhk03_images(mat_path: str | os.PathLike, split: str, out_dir: str | os.PathLike) -> list[str]:
    """Write every image of one split of ``cuhk-03.mat`` as a PNG into ``out_dir``; return the file names.

    Images already present are not rewritten, so a second call is cheap. Empty cells (people with fewer than ten
    images) are skipped.
    """
    import h5py
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    with h5py.File(mat_path, "r") as mat:
        if split not in mat:
            raise ValueError(f"{str(mat_path)!r} has no {split!r} entry; expected a cuhk-03.mat with "
                             f"'detected' and 'labeled' cell arrays")
        # MATLAB stores arrays column-major, so every dereferenced array is transposed back to MATLAB order.
        for campid, pair_ref in enumerate(mat[split][0]):
            cells = mat[pair_ref][:].T  # (num_pids, 10) object references
            for pid, person in enumerate(cells):
                for imgid, image_ref in enumerate(person):
                    image = mat[image_ref][:].T
                    if image.ndim != 3 or image.size == 0:
                        continue
                    view = 1 if imgid < _IMAGES_PER_PERSON // 2 else 2
                    name = f"{campid + 1}_{pid + 1:03d}_{view}_{imgid + 1:02d}.png"
                    target = out_dir / name
                    if not target.exists():
                        Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(target)
                    names.append(name)
    return names


def _find_np_folder(root: Path, split: str) -> Path | None:
    for parent in _NP_PARENTS:
        base = root / parent / split
        if all((base / sub).is_dir() for sub in SPLIT_FOLDERS):
            return base
    return None


def _find_mat_files(root: Path, split: str) -> tuple[Path, Path] | None:
    for parent in _MAT_PARENTS:
        base = root / parent
        if (base / _RAW_MAT).is_file() and (base / _config_name(split)).is_file():
            return base / _RAW_MAT, base / _config_name(split)
    return None


def _read_config(config_path: Path, image_dir: Path) -> tuple[list[ImageRecord], ...]:
    from scipy.io import loadmat

    config = loadmat(config_path, squeeze_me=True)
    fields = ("filelist", "labels", "camId", "train_idx", "query_idx", "gallery_idx")
    missing = [f for f in fields if f not in config]
    if missing:
        raise ValueError(f"{str(config_path)!r} lacks the field(s) {missing}; expected the CUHK03 new-protocol "
                         f"config with {list(fields)}")
    filelist = [str(n) for n in np.atleast_1d(config["filelist"])]
    labels = np.atleast_1d(config["labels"]).astype(np.int64)
    cams = np.atleast_1d(config["camId"]).astype(np.int64) - 1  # the file is 1-based
    if not len(filelist) == len(labels) == len(cams):
        raise ValueError(f"{str(config_path)!r}: filelist, labels and camId differ in length "
                         f"({len(filelist)}, {len(labels)}, {len(cams)})")

    def subset(field: str) -> list[ImageRecord]:
        idx = np.atleast_1d(config[field]).astype(np.int64) - 1  # 1-based in the file
        if idx.size and (idx.min() < 0 or idx.max() >= len(filelist)):
            raise ValueError(f"{str(config_path)!r}: {field} holds indices outside 1..{len(filelist)}")
        return [ImageRecord(str(image_dir / filelist[i]), int(labels[i]), int(cams[i])) for i in idx]

    return subset("train_idx"), subset("query_idx"), subset("gallery_idx")


class CUHK03(ReIDDataset):
    """CUHK03, new protocol, ``split`` "detected" or "labeled" (2 cameras).

    Args:
        root: folder holding either form described in the module docstring (also under ``cuhk03/``).
        split: "detected" (boxes from a person detector) or "labeled" (hand-drawn boxes).
        extract_dir: where the .mat form's images are written; default ``<root>/images_<split>``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "detected",
                 extract_dir: str | os.PathLike | None = None) -> None:
        if split not in _SPLITS:
            raise ValueError(f"CUHK03: split must be 'detected' or 'labeled', got {split!r}")
        self.name = f"cuhk03-{split}"
        self.split = split
        root = root_folder(root, "CUHK03")

        np_folder = _find_np_folder(root, split)
        if np_folder is not None:
            self.root = np_folder
            train, query, gallery = (read_market_folder(np_folder / sub, num_cameras=2) for sub in SPLIT_FOLDERS)
            super().__init__(train, query, gallery)
            return

        mat_files = _find_mat_files(root, split)
        if mat_files is None:
            raise FileNotFoundError(
                f"CUHK03: found neither layout under {str(root)!r}: expected the CUHK03-NP folders "
                f"'[cuhk03-np/]{split}/{{{','.join(SPLIT_FOLDERS)}}}', or the files "
                f"'[cuhk03/]{_RAW_MAT.as_posix()}' and '[cuhk03/]{_config_name(split)}'")
        raw_mat, config = mat_files
        self.root = raw_mat.parent.parent
        image_dir = Path(extract_dir) if extract_dir is not None else self.root / f"images_{split}"
        train, query, gallery = _read_config(config, image_dir)
        needed = {Path(r.path).name for r in (*train, *query, *gallery)}
        if not all((image_dir / n).is_file() for n in needed):
            written = set(extract_cuhk03_images(raw_mat, split, image_dir))
            absent = sorted(needed - written)
            if absent:
                raise ValueError(f"CUHK03: {str(config)!r} lists {len(absent)} image(s) that {str(raw_mat)!r} "
                                 f"does not contain, e.g. {absent[0]!r}")
        super().__init__(train, query, gallery)
