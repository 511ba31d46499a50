"""Shared behaviour of the data set classes: locating the root, scanning folders, summaries."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..records import IMAGE_EXTENSIONS, ImageRecord, relabel

__all__ = ["ReIDDataset", "MetricLearningDataset", "resolve_root", "root_folder", "list_images"]


def root_folder(root: str | os.PathLike, dataset: str) -> Path:
    """``root`` as an existing folder: TypeError for anything but a str or path, FileNotFoundError when missing."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"{dataset}: root must be a str or os.PathLike, got {type(root).__name__}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset}: root folder {str(root)!r} does not exist or is not a folder")
    return root


def resolve_root(root: str | os.PathLike, dataset: str, required: Sequence[str],
                 subfolders: Sequence[str] = ()) -> Path:
    """Return the folder holding every entry of ``required``: ``root`` itself or ``root/<subfolder>``.

    Data sets are unpacked in several ways (torchreid nests them, the archives add a versioned folder), so each
    class lists the nestings it accepts. The error names what is missing where, and every place that was tried.
    """
    root = root_folder(root, dataset)
    candidates = [root] + [root / sub for sub in subfolders]
    for base in candidates:
        if all((base / entry).exists() for entry in required):
            return base
    missing = [entry for entry in required if not (root / entry).exists()]
    tried = ", ".join(repr(str(c)) for c in candidates)
    raise FileNotFoundError(
        f"{dataset}: expected {', '.join(repr(e) for e in required)} in the data set folder; "
        f"missing under {str(root)!r}: {', '.join(repr(m) for m in missing)} (looked in {tried})")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (other files such as Thumbs.db are skipped)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"expected an image folder at {str(folder)!r}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _format_table(header: Sequence[str], rows: Sequence[Sequence[object]], title: str) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  " + "-" * (sum(widths) + 3 * (len(widths) - 1))

    def fmt(cells: Sequence[object]) -> str:
        first = f"{str(cells[0]):<{widths[0]}}"
        rest = [f"{str(c):>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  " + " | ".join([first, *rest])

    return "\n".join([f"=> {title}", line, fmt(header), line, *(fmt(r) for r in rows), line])


class ReIDDataset:
    """Person re-ID data: ``train`` (pids relabelled 0..n-1), ``query`` and ``gallery`` (original pids).

    Camera ids are 0-based. Junk images (pid -1) are dropped at load time, as torchreid does; distractors
    (pid 0 in Market-1501) stay in the gallery.
    """

    name = "reid"

    def __init__(self, train: Sequence[ImageRecord], query: Sequence[ImageRecord],
                 gallery: Sequence[ImageRecord], *, relabel_train: bool = True) -> None:
        self.train: list[ImageRecord] = relabel(train) if relabel_train else list(train)
        self.query: list[ImageRecord] = list(query)
        self.gallery: list[ImageRecord] = list(gallery)

    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({r.camid for r in self.train})

    def summary(self) -> str:
        """A table of ids, images and cameras per split."""
        rows = [(split, len({r.pid for r in recs}), len(recs), len({r.camid for r in recs}))
                for split, recs in (("train", self.train), ("query", self.query), ("gallery", self.gallery))]
        return _format_table(("subset", "# ids", "# images", "# cameras"), rows, f"{self.name} loaded")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(train={len(self.train)}, query={len(self.query)}, "
                f"gallery={len(self.gallery)}, num_train_pids={self.num_train_pids})")


class MetricLearningDataset:
    """Metric-learning data: ``train`` (classes relabelled 0..n-1) and ``test`` (original class ids), on disjoint
    classes. Records carry camid -1 (no cameras). Subclasses with a query/gallery split also set those."""

    name = "metric"

    def __init__(self, train: Sequence[ImageRecord], test: Sequence[ImageRecord]) -> None:
        self.train: list[ImageRecord] = relabel(train)
        self.test: list[ImageRecord] = list(test)

    @property
    def num_train_classes(self) -> int:
        return len({r.pid for r in self.train})

    # The same name as the re-ID classes so that model builders can size the classifier either way.
    num_train_pids = num_train_classes

    def _splits(self) -> list[tuple[str, list[ImageRecord]]]:
        return [("train", self.train), ("test", self.test)]

    def summary(self) -> str:
        """A table of classes and images per split."""
        rows = [(split, len({r.pid for r in recs}), len(recs)) for split, recs in self._splits()]
        return _format_table(("subset", "# classes", "# images"), rows, f"{self.name} loaded")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(train={len(self.train)}, test={len(self.test)}, "
                f"num_train_classes={self.num_train_classes})")
