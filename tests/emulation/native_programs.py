"""Builds the plain C++ emulation test programs in tests/emulation/ (no torch in them), cached
under ``<repo>/build/emulation/programs/<key>`` where the key hashes the sources, the headers they
can include (csrc/emulation/ and tests/emulation/) and the flags. (The drop-kernel driver, which
includes csrc/cuda/, is built by scripts/sanitize_emulated.sh, not here.)"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["HERE", "REPO_ROOT", "build_program", "run_program"]

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
BASE_FLAGS = ("-std=c++20", "-O1", "-g", "-pthread", "-DBDB_CUDA_EMULATION", "-Wall", "-Wno-unknown-pragmas")


def _key(source: Path, flags: tuple[str, ...], cxx: str) -> str:
    digest = hashlib.sha256()
    for path in sorted([*(REPO_ROOT / "csrc" / "emulation").rglob("*"), *HERE.glob("*")]):
        if path.is_file() and path.suffix in {".h", ".cuh", ".cu", ".cpp"}:
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(" ".join((cxx, str(source), *flags)).encode())
    return digest.hexdigest()[:16]


def build_program(source: str, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile tests/emulation/<source> with the base flags plus ``extra_flags``; returns the binary.

    Raises CalledProcessError (with the compiler output) if it does not compile.
    """
    cxx = os.environ.get("CXX", "g++")
    src = HERE / source
    flags = (*BASE_FLAGS, *extra_flags)
    out_dir = REPO_ROOT / "build" / "emulation" / "programs" / _key(src, flags, cxx)
    binary = out_dir / src.stem
    if binary.exists():
        return binary
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{src.stem}.{os.getpid()}.tmp"
    result = subprocess.run(
        [cxx, *flags, str(src), "-o", str(tmp)], capture_output=True, text=True, cwd=REPO_ROOT
    )
    if result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, result.args, output=result.stdout, stderr=result.stderr
        )
    shutil.move(tmp, binary)  # atomic within the directory: concurrent builders never see half a file
    return binary


def run_program(binary: Path, *args: str, timeout: float = 120.0, env: dict | None = None):
    """Run a built program; returns the CompletedProcess (stdout and stderr as text)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=timeout, env=full_env
    )
