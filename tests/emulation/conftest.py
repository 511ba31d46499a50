"""Fixtures of the CUDA emulation tests. Puts tests/ on sys.path (tests/ has no __init__.py), so
``emulated_library`` imports the same way here as from tests/conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from emulated_library import load_emulated_library  # noqa: E402


@pytest.fixture(scope="session")
def emulated_ops():
    """bdb_ext.ops bound to bdb_ext_emu: the CUDA kernels run by the emulator (built once, cached)."""
    return load_emulated_library()
