"""Loads the compiled library bdb_ext._C, refusing to run without it or against another torch."""

from __future__ import annotations

import torch

_REBUILD_HINT = (
    "Rebuild bdb_ext against the installed torch: from the source tree run\n"
    "    pip install --no-build-isolation --force-reinstall --no-deps .\n"
    "(add -e for an editable install; set BDB_EXT_CUDA=1 to require the CUDA kernels)."
)

try:
    from bdb_ext import _C
except ImportError as error:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        f"bdb_ext's compiled extension bdb_ext._C could not be loaded ({error}).\n{_REBUILD_HINT}"
    ) from error

_BUILD_INFO: dict = dict(_C.build_info())

if _BUILD_INFO["torch_version"] != torch.__version__:
    raise ImportError(
        f"bdb_ext._C was built against torch {_BUILD_INFO['torch_version']} but torch "
        f"{torch.__version__} is installed; custom ops must be built against the torch that loads them.\n"
        f"{_REBUILD_HINT}"
    )


def build_info() -> dict:
    """What the loaded bdb_ext._C was built with.

    Returns a dict with ``torch_version`` (str), ``cuda`` (bool: CUDA kernels compiled in),
    ``cuda_version`` (str or None), ``cuda_archs`` (str, e.g. "7.5;8.0;9.0+PTX") and ``debug`` (bool).
    """
    return dict(_BUILD_INFO)
