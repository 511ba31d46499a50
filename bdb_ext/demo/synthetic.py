"""A synthetic person re-ID data set written as JPEG files in the Market-1501 layout, cached on disk.

``ensure_synthetic_market(spec, cache_dir)`` returns a folder with ``bounding_box_train/``, ``query/`` and
``bounding_box_test/`` holding files named like Market-1501's (``0002_c1s1_000451_03.jpg``; pid 0000 for
distractors, -1 for junk), so the real :class:`bdb_ext.data.Market1501` loader reads it. The folder's name encodes
the generator version and a digest of the spec; it is built in a temporary folder and renamed into place, so an
interrupted build never leaves a half-written cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ImageFilter

from .appearance import random_camera, random_identity
from .render import render_background, render_person

__all__ = ["GENERATOR_VERSION", "SyntheticSpec", "default_cache_dir", "ensure_synthetic_market",
           "write_synthetic_market"]

#: Bump when the drawing or the layout changes, so old caches are not reused.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Identities are split into disjoint train and test sets, as in Market-1501."""

    num_train_ids: int = 150
    num_test_ids: int = 150
    num_cameras: int = 6  # Market-1501 has 6; the loader accepts 1..6
    cameras_per_id: tuple[int, int] = (2, 5)  # inclusive range of cameras that see each identity
    images_per_camera: tuple[int, int] = (1, 3)  # inclusive range of images per identity and camera
    num_distractors: int = 60  # gallery images of people outside the test set (pid 0000)
    num_junk: int = 20  # gallery images of background or blur (pid -1), ignored by the metrics
    height: int = 128
    width: int = 64
    jpeg_quality: int = 90
    seed: int = 0

    def validate(self) -> SyntheticSpec:
        if not 1 <= self.num_cameras <= 6:
            raise ValueError(f"num_cameras must be in 1..6 (Market-1501 naming), got {self.num_cameras}")
        low, high = self.cameras_per_id
        if not 2 <= low <= high <= self.num_cameras:
            raise ValueError(f"cameras_per_id must satisfy 2 <= low <= high <= num_cameras, got "
                             f"{self.cameras_per_id}")
        if not 1 <= self.images_per_camera[0] <= self.images_per_camera[1]:
            raise ValueError(f"images_per_camera must be an increasing range >= 1, got {self.images_per_camera}")
        for name in ("num_train_ids", "num_test_ids", "height", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_train_ids + self.num_test_ids + self.num_distractors > 9000:
            raise ValueError("at most 9000 identities fit the 4-digit pid naming")
        return self

    def digest(self) -> str:
        """A short hash of the spec and the generator version: the cache key."""
        payload = json.dumps({"version": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def default_cache_dir() -> Path:
    """$BDB_EXT_CACHE/demo, else $XDG_CACHE_HOME/bdb_ext/demo, else ~/.cache/bdb_ext/demo."""
    if os.environ.get("BDB_EXT_CACHE"):
        return Path(os.environ["BDB_EXT_CACHE"]) / "demo"
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "bdb_ext" / "demo"


class _Writer:
    """Names and writes images like Market-1501: <pid>_c<cam>s<seq>_<frame>_<box>.jpg, frames increasing."""

    def __init__(self, root: Path, quality: int) -> None:
        self.root, self.quality, self.frame = root, quality, 0
        self.counts: dict[str, int] = {}

    def write(self, folder: str, pid: int, camera: int, image) -> None:
        self.frame += 37  # frames of one camera's video, spaced like sampled detections
        pid_text = "-1" if pid < 0 else f"{pid:04d}"
        name = f"{pid_text}_c{camera + 1}s1_{self.frame:06d}_01.jpg"
        image.save(self.root / folder / name, quality=self.quality)
        self.counts[folder] = self.counts.get(folder, 0) + 1


def write_synthetic_market(spec: SyntheticSpec, root: str | os.PathLike) -> dict[str, int]:
    """Draw the data set described by ``spec`` into ``root`` (created); returns image counts per folder."""
    spec.validate()
    root = Path(root)
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    cameras = [random_camera(rng) for _ in range(spec.num_cameras)]
    total_ids = spec.num_train_ids + spec.num_test_ids + spec.num_distractors
    # Sparse, shuffled pids as in the real data; train and test sets are disjoint by construction.
    pids = np.sort(rng.choice(np.arange(1, 1501 if total_ids <= 1500 else 9001), total_ids, replace=False))
    order = rng.permutation(total_ids)
    train_pids = sorted(pids[order[:spec.num_train_ids]].tolist())
    test_pids = sorted(pids[order[spec.num_train_ids:spec.num_train_ids + spec.num_test_ids]].tolist())
    writer = _Writer(root, spec.jpeg_quality)
    size = (spec.height, spec.width)

    def views(who_rng: np.random.Generator) -> list[tuple[int, int]]:
        count = int(who_rng.integers(spec.cameras_per_id[0], spec.cameras_per_id[1] + 1))
        chosen = sorted(who_rng.choice(spec.num_cameras, count, replace=False).tolist())
        low, high = spec.images_per_camera
        return [(cam, int(who_rng.integers(low, high + 1))) for cam in chosen]

    for pid in train_pids:
        who = random_identity(rng)
        for cam, count in views(rng):
            for _ in range(count):
                writer.write("bounding_box_train", pid, cam, render_person(who, cameras[cam], rng, *size))
    for pid in test_pids:
        who = random_identity(rng)
        seen = views(rng)
        # One query from each of up to two cameras; every other camera's images go to the gallery, so each
        # query has a true match from another camera.
        query_cams = set(rng.choice([cam for cam, _ in seen], min(2, len(seen) - 1), replace=False).tolist())
        for cam, count in seen:
            for i in range(count + (cam in query_cams)):
                folder = "query" if (cam in query_cams and i == 0) else "bounding_box_test"
                writer.write(folder, pid, cam, render_person(who, cameras[cam], rng, *size))
    for _ in range(spec.num_distractors):
        who, cam = random_identity(rng), int(rng.integers(spec.num_cameras))
        writer.write("bounding_box_test", 0, cam, render_person(who, cameras[cam], rng, *size))
    for _ in range(spec.num_junk):
        cam = int(rng.integers(spec.num_cameras))
        junk = render_background(cameras[cam], rng, (spec.width, spec.height)).filter(ImageFilter.GaussianBlur(3))
        writer.write("bounding_box_test", -1, cam, junk)
    return writer.counts


def ensure_synthetic_market(spec: SyntheticSpec | None = None, cache_dir: str | os.PathLike | None = None,
                            ) -> tuple[Path, bool]:
    """The cached data set folder for ``spec`` under ``cache_dir`` (default :func:`default_cache_dir`), drawn if
    missing. Returns (folder, whether it was reused from the cache)."""
    spec = (spec or SyntheticSpec()).validate()
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = cache / f"synthetic-market-v{GENERATOR_VERSION}-{spec.digest()}"
    if (final / "synthetic.json").is_file():
        return final, True
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
    try:
        counts = write_synthetic_market(spec, staging)
        manifest = {"generator_version": GENERATOR_VERSION, "spec": dataclasses.asdict(spec), "counts": counts}
        (staging / "synthetic.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        try:
            os.replace(staging, final)
        except OSError:
            # Another process finished the same data set first (the target exists and is not empty): use theirs.
            if not (final / "synthetic.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final, False
