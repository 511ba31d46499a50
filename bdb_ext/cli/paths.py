"""Checking, before any work starts, that the files a command will write can be written.

A bad ``--json`` path used to fail only after the whole evaluation had run; an unwritable output folder only after
the data set was read and the model built. Asking the file system itself (creating the folder and a probe file) is
the only test that also holds for root, read-only mounts and network file systems, where permission bits lie.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["writable_folder", "writable_file"]


def writable_folder(path: str | os.PathLike, what: str) -> Path:
    """Create the folder ``path`` if needed and check that a file can be written in it; return it.

    Raises NotADirectoryError, FileExistsError or PermissionError (OSErrors) whose message names ``what``.
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{what} {str(folder)!r} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise type(error)(f"{what} {str(folder)!r} is not writable: {reason}") from error
    return folder


def writable_file(path: str | os.PathLike, what: str) -> Path:
    """Check that the file ``path`` can be written (its folder is created if needed); return it."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise IsADirectoryError(f"{what} {str(target)!r} is a folder; give a file name such as "
                                f"{str(target / 'metrics.json')!r}")
    writable_folder(target.parent, f"{what} {str(target)!r}: its folder")
    return target
