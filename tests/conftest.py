"""Shared fixtures: the backends every op test runs against.

- ``cpu``: the C++ CPU kernels (torch.ops.bdb_ext on CPU tensors);
- ``cuda-emulated``: the project's CUDA source compiled as C++ and run by the CPU emulation harness
  (torch.ops.bdb_ext_emu on CPU tensors), built on first use by tests/emulated_library.py;
- ``cuda``: the real CUDA kernels, when a GPU is present (skipped cleanly otherwise).
"""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch

import bdb_ext
from emulated_library import OP_NAMES

BACKENDS = ("cpu", "cuda-emulated", "cuda")


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    device: torch.device
    # The bdb_ext.ops functions (or the same functions bound to bdb_ext_emu) and ``namespace``, the
    # torch.ops namespace they run in.
    ops: types.SimpleNamespace

    @property
    def is_emulated(self) -> bool:
        return self.name == "cuda-emulated"

    @property
    def raw_ops(self):
        """The torch.ops namespace itself, for the internal backward ops that have no public function."""
        return getattr(torch.ops, self.ops.namespace)


# The public functions themselves, as the emulated backend's twins are laid out.
PUBLIC_OPS = types.SimpleNamespace(
    namespace="bdb_ext", **{name: getattr(bdb_ext.ops, name) for name in OP_NAMES}
)


@pytest.fixture(scope="session")
def emulated_library() -> types.SimpleNamespace:
    from emulated_library import load_emulated_library

    return load_emulated_library()


@pytest.fixture(params=BACKENDS)
def backend(request) -> Backend:
    name = request.param
    if name == "cpu":
        return Backend(name, torch.device("cpu"), PUBLIC_OPS)
    if name == "cuda-emulated":
        return Backend(name, torch.device("cpu"), request.getfixturevalue("emulated_library"))
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if not bdb_ext.build_info()["cuda"]:
        pytest.fail("a CUDA device is present but bdb_ext._C was built without CUDA kernels (BDB_EXT_CUDA=1 to force)")
    return Backend(name, torch.device("cuda"), PUBLIC_OPS)


@pytest.fixture(params=["cpu", "cuda"])
def device(request) -> torch.device:
    """For tests of Python-level code (layers, modules): the real backends only."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device(request.param)
