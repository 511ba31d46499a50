"""Atomic checkpoint files: a crash mid-write never leaves a truncated file under the final name, a file that is
not a readable checkpoint is refused with one error naming it, and temporary files of a crashed save are removed
by the next save."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "remove_stale_temporaries"]


def _fsync_dir(folder: Path) -> None:
    # The rename itself must reach the disk too, or a power cut can bring the old name back.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that a save of ``path`` killed mid-write (kill -9, power cut) left behind;
    returns them.

    One process writes a given checkpoint (rank 0 of one run), so any temporary of ``path`` that exists when that
    process starts a new save is a leftover, never a write in progress.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for stale in path.parent.glob(f"{_temporary_prefix(path)}*.tmp"):
        try:
            stale.unlink()
            removed.append(stale)
        except FileNotFoundError:
            pass
    return removed


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (tensors and primitive containers only) to ``path`` atomically.

    The data goes to a temporary file in the same folder (so the final rename stays on one file system), is
    flushed and fsync'ed, then ``os.replace``d over ``path``. If anything fails the temporary file is removed
    and the previous ``path`` is untouched; temporaries left by an earlier save that was killed are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


# What torch.load raises on a file that is not a (complete) torch.save archive: a truncated or empty file, another
# format, a pickle that weights_only refuses.
_UNREADABLE = (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, RuntimeError, ValueError, KeyError,
               AttributeError, IndexError, TypeError, UnicodeDecodeError)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                    mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)`` (no arbitrary code runs while unpickling).

    Args:
        path: a file written by :func:`save_checkpoint` (or any ``torch.save`` of a dict).
        map_location: where tensors go.
        mmap: map the file instead of reading it (cheap when only a small entry, e.g. the config, is needed).

    Raises:
        FileNotFoundError: ``path`` does not exist (or is a directory).
        ValueError: ``path`` is empty, truncated, corrupt, not a torch checkpoint, or not a dict; the message names
            the path.
    """
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"checkpoint {str(path)!r} is a directory, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {str(path)!r} is empty (0 bytes)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except _UNREADABLE as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"checkpoint {str(path)!r} is not a readable torch checkpoint (truncated, corrupt or "
                         f"another format): {reason}") from error
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {str(path)!r} does not hold a dict")
    return state
