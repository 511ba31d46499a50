"""setup.py builds for the machine it is on: the visible GPU's archs by default (PyTorch's convention), CPU-only
with no GPU and no explicit list, CUDA when BDB_EXT_CUDA=1 or TORCH_CUDA_ARCH_LIST asks for it. setup.py runs here
with setuptools.setup replaced by a recorder, and the GPU, nvcc and torch's CUDA version faked, so nothing builds."""

from __future__ import annotations

import os
import runpy
import shutil
from pathlib import Path

import pytest
import setuptools
import torch
import torch.utils.cpp_extension

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
SWITCHES = ("BDB_EXT_CUDA", "TORCH_CUDA_ARCH_LIST", "BDB_EXT_DEBUG")


def plan(monkeypatch, *, gpus: list[tuple[int, int]], env: dict[str, str], cuda_torch: bool = True,
         nvcc: bool = True) -> str | None:
    """The arch list setup.py compiles for (its BDB_CUDA_ARCHS macro), or None for a CPU-only extension."""
    for name in SWITCHES:
        monkeypatch.setenv(name, env.get(name, ""))  # "" is unset for setup.py; monkeypatch restores the value
    monkeypatch.setenv("CUDA_HOME", "/opt/cuda")
    monkeypatch.setattr(torch.version, "cuda", "13.0" if cuda_torch else None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: bool(gpus))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(gpus))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: gpus[i])
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_90", "sm_100", "sm_120"])
    monkeypatch.setattr(torch.utils.cpp_extension, "CUDA_HOME", "/opt/cuda" if nvcc else None)
    monkeypatch.setattr(shutil, "which", lambda path: path if nvcc and path.endswith("nvcc") else None)
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(SETUP.parent)
    runpy.run_path(str(SETUP), run_name="__main__")
    (extension,) = captured["ext_modules"]
    macros = dict(extension.define_macros)
    is_cuda = any(source.endswith(".cu") for source in extension.sources)
    assert is_cuda == ("BDB_WITH_CUDA" in macros)
    if not is_cuda:
        return None
    assert os.environ["TORCH_CUDA_ARCH_LIST"] == macros["BDB_CUDA_ARCHS"].strip('"'), "torch's -gencode flags agree"
    return macros["BDB_CUDA_ARCHS"].strip('"')


def test_no_gpu_and_no_list_builds_the_cpu_kernels_only(monkeypatch, capsys):
    assert plan(monkeypatch, gpus=[], env={}) is None
    assert "no GPU visible and TORCH_CUDA_ARCH_LIST unset: building the CPU kernels only" in capsys.readouterr().err


@pytest.mark.parametrize("gpus, archs", [
    ([(9, 0)], "9.0+PTX"),
    ([(8, 6), (8, 0), (8, 6)], "8.0;8.6+PTX"),
    ([(13, 0)], "12.0+PTX"),  # newer than this torch knows: its newest arch, with PTX
])
def test_the_default_is_the_visible_gpus(monkeypatch, gpus, archs):
    assert plan(monkeypatch, gpus=gpus, env={}) == archs


def test_an_explicit_list_wins(monkeypatch):
    assert plan(monkeypatch, gpus=[], env={"TORCH_CUDA_ARCH_LIST": "8.0;9.0+PTX"}) == "8.0;9.0+PTX"
    assert plan(monkeypatch, gpus=[(9, 0)], env={"TORCH_CUDA_ARCH_LIST": "7.5"}) == "7.5"


def test_forced_cuda_without_a_gpu_builds_the_release_list(monkeypatch):
    release = "7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX"  # the list README's build table documents
    assert plan(monkeypatch, gpus=[], env={"BDB_EXT_CUDA": "1"}) == release
    assert plan(monkeypatch, gpus=[], env={"BDB_EXT_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "9.0"}) == "9.0"  # CI
    assert plan(monkeypatch, gpus=[(8, 9)], env={"BDB_EXT_CUDA": "1"}) == "8.9+PTX"


def test_cpu_only_switch_and_missing_toolchains(monkeypatch):
    assert plan(monkeypatch, gpus=[(9, 0)], env={"BDB_EXT_CUDA": "0"}) is None
    assert plan(monkeypatch, gpus=[(9, 0)], env={}, nvcc=False) is None
    assert plan(monkeypatch, gpus=[], env={"TORCH_CUDA_ARCH_LIST": "9.0"}, cuda_torch=False) is None
    with pytest.raises(SystemExit, match="nvcc was not found"):
        plan(monkeypatch, gpus=[(9, 0)], env={"BDB_EXT_CUDA": "1"}, nvcc=False)
