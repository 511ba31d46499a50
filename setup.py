"""Builds bdb_ext._C: the op schemas, the CPU kernels and (when possible) the CUDA kernels.

Switches (environment variables):
  BDB_EXT_CUDA=1        force the CUDA kernels (fail if torch is a CPU build or nvcc is missing)
  BDB_EXT_CUDA=0        CPU kernels only, even with a CUDA torch, nvcc and a GPU
  (unset)               CUDA kernels when torch is a CUDA build, nvcc is found, and there is a GPU to build for
                        (one is visible, or TORCH_CUDA_ARCH_LIST names the archs); CPU kernels only otherwise
  TORCH_CUDA_ARCH_LIST  e.g. "9.0" or "8.0;9.0+PTX". Default, as PyTorch's own: the archs of the visible GPUs (PTX
                        for the newest); with no GPU and BDB_EXT_CUDA=1, the release list RELEASE_CUDA_ARCHS
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

# The release list (wheels for machines we do not know): CUDA 13 dropped everything below Turing; PTX for the
# newest arch keeps future GPUs working.
RELEASE_CUDA_ARCHS = "7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX"
ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    if value not in ("0", "1"):
        sys.exit(f"setup.py: {name} must be 0 or 1, got {value!r}")
    return value


def visible_gpu_archs() -> str | None:
    """The archs of the visible GPUs as PyTorch's cpp_extension picks them when TORCH_CUDA_ARCH_LIST is unset
    (each capability capped at the newest one this torch supports, PTX for the newest), or None without a GPU."""
    if torch.version.cuda is None or not torch.cuda.is_available():
        return None
    supported = [tuple(divmod(int(arch.split("_")[1]), 10)) for arch in torch.cuda.get_arch_list()
                 if arch.startswith("sm_")]
    newest = max(supported) if supported else (99, 9)
    archs = sorted({min(tuple(torch.cuda.get_device_capability(i)), newest) for i in range(torch.cuda.device_count())})
    return ";".join(f"{major}.{minor}" for major, minor in archs) + "+PTX"


def cuda_archs() -> str | None:
    """The CUDA archs to build for, or None for a CPU-only build (see the switches above)."""
    force = _flag("BDB_EXT_CUDA")
    have_nvcc = CUDA_HOME is not None and shutil.which(os.path.join(CUDA_HOME, "bin", "nvcc")) is not None
    have_cuda_torch = torch.version.cuda is not None
    if force == "0":
        return None
    explicit = os.environ.get("TORCH_CUDA_ARCH_LIST") or None
    if force == "1":
        if not have_cuda_torch:
            sys.exit(f"setup.py: BDB_EXT_CUDA=1 but torch {torch.__version__} is a CPU-only build")
        if not have_nvcc:
            sys.exit("setup.py: BDB_EXT_CUDA=1 but nvcc was not found (set CUDA_HOME)")
        return explicit or visible_gpu_archs() or RELEASE_CUDA_ARCHS
    if not (have_cuda_torch and have_nvcc):
        return None
    archs = explicit or visible_gpu_archs()
    if archs is None:
        # Compiling device code for seven archs takes most of a small machine's build time, for kernels that
        # nothing here can run.
        print("setup.py: no GPU visible and TORCH_CUDA_ARCH_LIST unset: building the CPU kernels only "
              "(BDB_EXT_CUDA=1 builds the CUDA kernels too)", file=sys.stderr)
    return archs


def _extension():
    debug = _flag("BDB_EXT_DEBUG") == "1"
    archs = cuda_archs()
    with_cuda = archs is not None
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
