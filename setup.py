"""Builds bdb_ext._C: the op schemas, the CPU kernels and (when possible) the CUDA kernels.

Switches (environment variables):
  BDB_EXT_CUDA=1        force the CUDA kernels (fail if torch is a CPU build or nvcc is missing)
  BDB_EXT_CUDA=0        CPU kernels only, even with a CUDA torch and nvcc
  (unset)               CUDA kernels when torch is a CUDA build and nvcc is found
  TORCH_CUDA_ARCH_LIST  e.g. "9.0" or "8.0;9.0+PTX" (default: sm_75 .. sm_120, PTX for the newest)
  NVCC_FLAGS            extra flags for nvcc
  MAX_JOBS              parallel compile jobs (ninja)
  BDB_EXT_DEBUG=1       -O0 -g (and -G for device code)
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

from setuptools import setup

_DEFAULT_CUDA_HOME = "/usr/local/cuda"
# torch's own guess goes through `which nvcc`; a wrapper script in /usr/local/bin would make it
# look for headers under /usr/local, so point it at a real toolkit first when there is one.
if not (os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")):
    if os.path.exists(os.path.join(_DEFAULT_CUDA_HOME, "bin", "nvcc")):
        os.environ["CUDA_HOME"] = _DEFAULT_CUDA_HOME

import torch  # noqa: E402
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension  # noqa: E402

# CUDA 13 dropped everything below Turing; PTX for the newest arch keeps future GPUs working.
DEFAULT_CUDA_ARCHS = "7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX"
ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    if value not in ("0", "1"):
        sys.exit(f"setup.py: {name} must be 0 or 1, got {value!r}")
    return value


def _want_cuda() -> bool:
    force = _flag("BDB_EXT_CUDA")
    have_nvcc = CUDA_HOME is not None and shutil.which(os.path.join(CUDA_HOME, "bin", "nvcc")) is not None
    have_cuda_torch = torch.version.cuda is not None
    if force == "0":
        return False
    if force == "1":
        if not have_cuda_torch:
            sys.exit(f"setup.py: BDB_EXT_CUDA=1 but torch {torch.__version__} is a CPU-only build")
        if not have_nvcc:
            sys.exit("setup.py: BDB_EXT_CUDA=1 but nvcc was not found (set CUDA_HOME)")
        return True
    return have_cuda_torch and have_nvcc


def _extension():
    debug = _flag("BDB_EXT_DEBUG") == "1"
    with_cuda = _want_cuda()
    sources = [os.path.join("csrc", "extension.cpp")] + sorted(glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    define_macros = [("BDB_TORCH_VERSION", f'"{torch.__version__}"')]
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # at::parallel_for is an inline `#pragma omp parallel`: without -fopenmp the CPU kernels would
    # silently run on one thread. The libgomp this links is the one torch has already loaded.
    cxx_flags = ["-std=c++20", "-fopenmp", *opt]
    link_flags = ["-fopenmp"]
    if debug:
        define_macros.append(("BDB_DEBUG_BUILD", "1"))
    if not with_cuda:
        return CppExtension(
            "bdb_ext._C",
            sources,
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=link_flags,
        )

    archs = os.environ.get("TORCH_CUDA_ARCH_LIST") or DEFAULT_CUDA_ARCHS
    # torch reads TORCH_CUDA_ARCH_LIST itself to emit -gencode flags; set it so both agree.
    os.environ["TORCH_CUDA_ARCH_LIST"] = archs
    sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
    define_macros += [
        ("BDB_WITH_CUDA", "1"),
        ("BDB_CUDA_VERSION", f'"{torch.version.cuda}"'),
        ("BDB_CUDA_ARCHS", f'"{archs}"'),
    ]
    nvcc_flags = ["-std=c++20", *opt, "--expt-relaxed-constexpr", "-lineinfo"]
    if debug:
        nvcc_flags.append("-G")
    nvcc_flags += os.environ.get("NVCC_FLAGS", "").split()
    return CUDAExtension(
        "bdb_ext._C",
        sources,
        define_macros=define_macros,
        extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags},
        extra_link_args=link_flags,
    )


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
