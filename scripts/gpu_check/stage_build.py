"""Stage build: build bdb_ext._C in place for the GPU present only, against the torch on this machine.

1. Packages: ninja, pybind11, numpy, pytest, hypothesis, pytest-benchmark. Missing ones are
   pip-installed if pip can reach an index (a GPU machine may have no network: then what needs them
   is skipped, and the result says so). torch is never installed: the machine's own is used,
   whatever its version.
2. Arch: TORCH_CUDA_ARCH_LIST from torch.cuda.get_device_capability() (e.g. "9.0"), nothing else.
3. ``setup.py build_ext --inplace`` with BDB_EXT_CUDA=1, NVCC_FLAGS += "-Xptxas -v", MAX_JOBS = CPUs;
   its output goes to build_compile.log (build.log is the stage's own). ptxas's per-kernel resource
   lines (registers, stack, spills, shared memory) of the bdb kernels go into the result;
   kernels.md wants no stack frame or spill.
4. build_info() of the new library, and scripts/check_cuda_binary.sh on it.

Rehearsal: steps 1-2 report without installing (arch "9.0"), step 3 compiles one small kernel with
nvcc -Xptxas -v (when nvcc exists) to exercise the ptxas parsing, and step 4 checks the library
already built in the tree.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import REPO_ROOT, Stage, run_stage, tool_path

PACKAGES = {"ninja": "ninja", "pybind11": "pybind11", "numpy": "numpy", "pytest": "pytest",
            "hypothesis": "hypothesis", "pytest_benchmark": "pytest-benchmark"}
PIP_TIMEOUT_S = 90
REHEARSAL_KERNEL = """
namespace bdb {
template <typename T> __global__ void rehearsal_kernel(T* x, long n) {
  for (long i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) x[i] *= T(2);
}
template __global__ void rehearsal_kernel<float>(float*, long);
}  // namespace bdb
"""

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'")
_PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas(log: str) -> list[dict[str, Any]]:
    """Per-kernel resource usage from ``nvcc -Xptxas -v`` output (one entry per kernel and arch)."""
    kernels: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            current = {"kernel": m.group(1), "arch": m.group(2)}
            kernels.append(current)
        elif current is not None:
            if m := _PROPS.search(line):
                current.update(stack_bytes=int(m.group(1)), spill_store_bytes=int(m.group(2)),
                               spill_load_bytes=int(m.group(3)))
            if m := _USED.search(line):
                current["registers"] = int(m.group(1))
                if s := _SMEM.search(line):
                    current["smem_bytes"] = int(s.group(1))
    return kernels


def demangle(names: list[str]) -> dict[str, str]:
    cxxfilt = shutil.which("c++filt")
    if not cxxfilt or not names:
        return {}
    out = subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True)
    return dict(zip(names, out.stdout.splitlines())) if out.returncode == 0 else {}


def ensure_packages(stage: Stage) -> None:
    missing = [pip_name for module, pip_name in PACKAGES.items() if importlib.util.find_spec(module) is None]
    stage.results["packages_missing"] = missing
    if not missing:
        return
    if stage.rehearse:
        stage.note(f"rehearsal: would pip install {missing}")
        return
    cmd = [sys.executable, "-m", "pip", "install", "--retries", "0", "--timeout", "10", *missing]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        ok = proc.returncode == 0
        detail = (proc.stdout + proc.stderr)[-2000:]
    except subprocess.TimeoutExpired:
        ok, detail = False, f"pip gave no answer in {PIP_TIMEOUT_S} s"
    (stage.outdir / "build_pip.log").write_text(detail)
    still = [p for m, p in PACKAGES.items() if importlib.util.find_spec(m) is None]
    stage.results.update(pip_ok=ok, packages_still_missing=still)
    if still:
        uses = {"ninja": "the build is serial (slow)", "pytest": "the tests stage is skipped",
                "hypothesis": "the property tests cannot be collected", "pytest-benchmark": "nothing (not used here)",
                "numpy": "nothing in the GPU check", "pybind11": "nothing (torch ships its headers)"}
        stage.note("not installable here (no network?): " + "; ".join(f"{p}: {uses[p]}" for p in still))


def library_build_info() -> dict[str, Any]:
    """build_info() of the bdb_ext._C in the tree, read in a fresh process (the build may just have replaced it)."""
    probe = subprocess.run([sys.executable, "-c", "import json, bdb_ext; print(json.dumps(bdb_ext.build_info()))"],
                           cwd=REPO_ROOT, capture_output=True, text=True)
    if probe.returncode != 0:
        raise RuntimeError(f"import bdb_ext failed: {probe.stderr[-1500:]}")
    return json.loads(probe.stdout.strip().splitlines()[-1])


def gpu_arch(stage: Stage) -> str:
    if stage.rehearse:  # no device: the arch list the tree's library was built for stands in for it
        return library_build_info().get("cuda_archs") or "9.0"
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"torch {torch.__version__} sees no CUDA device: nothing to build for")
    major, minor = torch.cuda.get_device_capability(0)
    return f"{major}.{minor}"


def compile_in_place(stage: Stage, arch: str) -> str:
    """The real build; returns its log."""
    for old in (REPO_ROOT / "bdb_ext").glob("_C*.so"):
        old.unlink()
    env = dict(os.environ, BDB_EXT_CUDA="1", TORCH_CUDA_ARCH_LIST=arch,
               NVCC_FLAGS=(os.environ.get("NVCC_FLAGS", "") + " -Xptxas -v").strip(),
               MAX_JOBS=os.environ.get("MAX_JOBS", str(os.cpu_count() or 4)))
    cmd = [sys.executable, "setup.py", "build_ext", "--inplace"]
    stage.results["build_command"] = f"TORCH_CUDA_ARCH_LIST={arch} NVCC_FLAGS='{env['NVCC_FLAGS']}' " + " ".join(cmd[1:])
    timeout = None if stage.deadline_s is None else max(stage.time_left() - 10, 10)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    log = proc.stdout + proc.stderr
    (stage.outdir / "build_compile.log").write_text(log)
    stage.results["build_exit_status"] = proc.returncode
    if proc.returncode != 0:
        raise RuntimeError(f"setup.py build_ext failed (exit {proc.returncode}); see build_compile.log:\n{log[-3000:]}")
    return log


def compile_rehearsal_kernel(stage: Stage, arch: str) -> str:
    nvcc = tool_path("nvcc")
    if nvcc is None:
        stage.note("rehearsal: nvcc not found, the ptxas parsing is not exercised")
        return ""
    sm = arch.split(";")[0].replace("+PTX", "").replace(".", "")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "rehearsal.cu"
        src.write_text(REHEARSAL_KERNEL)
        proc = subprocess.run([nvcc, "-c", f"-arch=sm_{sm}", "-Xptxas", "-v", "-o", str(Path(tmp) / "r.o"), str(src)],
                              capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    (stage.outdir / "build_compile.log").write_text(log)
    if proc.returncode != 0:
        raise RuntimeError(f"nvcc failed on the rehearsal kernel: {log[-2000:]}")
    stage.note("rehearsal: compiled one small kernel with nvcc -Xptxas -v instead of the whole build")
    return log


def check_library(stage: Stage, arch: str) -> None:
    try:
        info = library_build_info()
    except RuntimeError as error:
        stage.fail(str(error))
        return
    stage.results["build_info"] = info
    if not info.get("cuda") or info.get("cuda_archs") != arch:
        stage.fail(f"build_info {info}: expected cuda=True with archs {arch!r}")
    so = next(iter(sorted((REPO_ROOT / "bdb_ext").glob("_C*.so"))), None)
    script = REPO_ROOT / "scripts" / "check_cuda_binary.sh"
    env = dict(os.environ, BDB_EXPECT_ARCHS=arch, PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(script), str(so)], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    (stage.outdir / "build_binary_check.log").write_text(proc.stdout + proc.stderr)
    stage.results["binary_check_exit_status"] = proc.returncode
    if proc.returncode != 0:
        stage.fail(f"scripts/check_cuda_binary.sh failed (exit {proc.returncode}); see build_binary_check.log")


def body(stage: Stage) -> None:
    ensure_packages(stage)
    arch = gpu_arch(stage)
    stage.results["arch"] = arch
    stage.checkpoint()
    log = compile_rehearsal_kernel(stage, arch) if stage.rehearse else compile_in_place(stage, arch)
    kernels = [k for k in parse_ptxas(log) if "3bdb" in k["kernel"]]
    names = demangle([k["kernel"] for k in kernels])
    for k in kernels:
        k["name"] = names.get(k["kernel"], k["kernel"])
    heavy = [k["name"] for k in kernels if k.get("stack_bytes") or k.get("spill_store_bytes") or k.get("spill_load_bytes")]
    stage.results.update(ptxas=kernels, kernels_with_stack_or_spill=heavy)
    if log and not kernels:
        stage.fail("no ptxas resource lines for bdb kernels in the build log (was -Xptxas -v passed?)")
    if heavy:
        stage.note(f"kernels.md wants no stack frame or spill; these have some: {heavy}")
    stage.checkpoint()
    check_library(stage, arch)
    max_regs = max((k.get("registers", 0) for k in kernels), default=None)
    stage.headline = (f"arch {arch}: {len(kernels)} bdb kernel builds, max {max_regs} registers, "
                      f"{len(heavy)} with stack/spill")


if __name__ == "__main__":
    sys.exit(run_stage("build", body))
