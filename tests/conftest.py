"""Shared fixtures: the backends every op test runs against.

- ``cpu``: the C++ CPU kernels (torch.ops.bdb_ext on CPU tensors);
- ``cuda-emulated``: the project's CUDA source compiled as C++ and run by the CPU emulation harness
  (torch.ops.bdb_ext_emu on CPU tensors), built on first use by tests/emulated_library.py;
- ``cuda``: the real CUDA kernels, when a GPU is present (skipped cleanly otherwise).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import bdb_ext
from bdb_ext.ops import OpLibrary

BACKENDS = ("cpu", "cuda-emulated", "cuda")


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    device: torch.device
    ops: OpLibrary

    @property
    def is_emulated(self) -> bool:
        return self.name == "cuda-emulated"


@pytest.fixture(scope="session")
def emulated_library() -> OpLibrary:
    from emulated_library import load_emulated_library

    return load_emulated_library()


@pytest.fixture(params=BACKENDS)
def backend(request) -> Backend:
    name = request.param
    if name == "cpu":
        return Backend(name, torch.device("cpu"), bdb_ext.ops._library)
    if name == "cuda-emulated":
        return Backend(name, torch.device("cpu"), request.getfixturevalue("emulated_library"))
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if not bdb_ext.build_info()["cuda"]:
        pytest.fail("a CUDA device is present but bdb_ext._C was built without CUDA kernels (BDB_EXT_CUDA=1 to force)")
    return Backend(name, torch.device("cuda"), bdb_ext.ops._library)


@pytest.fixture(params=["cpu", "cuda"])
def device(request) -> torch.device:
    """For tests of Python-level code (layers, modules): the real backends only."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device(request.param)
