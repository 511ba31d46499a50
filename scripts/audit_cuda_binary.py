"""Device-code audit of a built bdb_ext._C (no GPU needed): for every bdb kernel in every cubin,

* no stack frame and no local memory (cuobjdump -res-usage: STACK:0, LOCAL:0);
* registers and static shared memory within what the occupancy model of benchmarks/perf_model.py
  assumes for that kernel (its resident blocks per SM on a 64K-register SM);
* the vectorised drop kernels (16-byte VecOf accesses) really use 128-bit global accesses in SASS:
  LDG.E.128 in the kernels that load VecOf, STG.E.128 in those that only store it (drop_pool's
  backward, the strided drop kernel).

Prints one table (CI keeps it in its log) and exits 1 on any violation, 2 when it cannot run.

Usage: python scripts/audit_cuda_binary.py --cuobjdump PATH LIBRARY.so (scripts/check_cuda_binary.sh runs it)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import perf_model  # noqa: E402

__all__ = ["KernelResources", "audit", "main", "parse_res_usage", "parse_sass"]

# Kernels that move VecOf<scalar_t, VEC> through global memory, and the 128-bit instruction that a
# 16-byte VecOf must compile to.
VECTOR_ACCESS = {
    "drop_block_kernel": "LDG.E.128",
    "drop_block_strided_kernel": "STG.E.128",
    "drop_pool_planes_kernel": "LDG.E.128",
    "drop_pool_channels_kernel": "LDG.E.128",
    "drop_pool_backward_kernel": "STG.E.128",
}
SCALAR_BYTES = {"float": 4, "double": 8, "c10::Half": 2, "c10::BFloat16": 2}


@dataclass
class KernelResources:
    arch: str
    mangled: str
    registers: int
    stack: int
    shared: int
    local: int
    demangled: str = ""


def _function_lines(text: str, function_header: str) -> Iterator[tuple[str, str, str]]:
    """(arch, mangled function, line) for each line of `cuobjdump` output that follows a function header
    (``function_header``: a regex whose group 1 is the name) within an ``arch = sm_XX`` section."""
    arch = "?"
    function = None
    for line in text.splitlines():
        m = re.match(r"\s*arch = (sm_\d+\w*)", line)
        if m:
            arch, function = m.group(1), None
            continue
        m = re.match(function_header, line)
        if m:
            function = m.group(1)
            continue
        if function is not None:
            yield arch, function, line


def parse_res_usage(text: str) -> list[KernelResources]:
    """The bdb kernels (mangled names in namespace bdb) of `cuobjdump -res-usage` output."""
    out = []
    last = None
    for arch, function, line in _function_lines(text, r"\s*Function (\S+):"):
        m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", line)
        if m and function.startswith("_ZN3bdb") and (arch, function) != last:  # one usage line a function
            reg, stack, shared, local = map(int, m.groups())
            out.append(KernelResources(arch, function, reg, stack, shared, local))
            last = (arch, function)
    return out


def parse_sass(text: str) -> dict[tuple[str, str], str]:
    """{(arch, mangled function): its SASS} from `cuobjdump -sass` output."""
    out: dict[tuple[str, str], list[str]] = {}
    for arch, function, line in _function_lines(text, r"\s*Function : (\S+)"):
        out.setdefault((arch, function), []).append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def demangle(names: list[str]) -> list[str]:
    cxxfilt = shutil.which("c++filt")
    if cxxfilt is None:
        raise RuntimeError("c++filt (binutils) is needed to read the kernels' template arguments")
    result = subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def _short(demangled: str) -> str:
    return re.sub(r"\(.*\)$", "", demangled).removeprefix("void ").removeprefix("bdb::")


def audit(kernels: list[KernelResources], sass: dict[tuple[str, str], str]) -> tuple[list[str], list[str]]:
    """(table rows, violations) for the given kernels."""
    rows, problems = [], []
    header = f"{'arch':7} {'kernel':58} {'REG':>4} {'max':>4} {'STACK':>5} {'LOCAL':>5} {'SHARED':>6} {'max':>6} {'128-bit':>9}  verdict"
    rows.append(header)
    rows.append("-" * len(header))
    for k in sorted(kernels, key=lambda k: (k.arch, k.demangled)):
        family, args = perf_model.parse_kernel(k.demangled)
        name = _short(k.demangled)
        spec = perf_model.KERNELS.get(family)
        bad = []
        if spec is None:
            bad.append(f"no model in benchmarks/perf_model.py KERNELS for {family}")
            reg_max = shared_max = None
        else:
            reg_max = perf_model.register_ceiling(spec, args=args)
            shared_max = spec.max_shared_bytes
            if k.registers > reg_max:
                bad.append(f"{k.registers} registers > {reg_max} ({spec.blocks_for(args)} blocks/SM assumed)")
            if k.shared > shared_max:
                bad.append(f"{k.shared} B shared > {shared_max} B")
        if k.stack:
            bad.append(f"stack frame of {k.stack} B")
        if k.local:
            bad.append(f"{k.local} B local memory (spills)")
        wide = "-"
        instruction = VECTOR_ACCESS.get(family)
        if instruction is not None and len(args) >= 2 and SCALAR_BYTES.get(args[0], 0) * int(args[1]) == 16:
            code = sass.get((k.arch, k.mangled))
            if code is None:
                wide = "no SASS"
                bad.append("no SASS found for this kernel")
            elif instruction in code:
                wide = instruction.split(".")[0] + ".128"
            else:
                wide = "MISSING"
                bad.append(f"16-byte vector kernel without {instruction}")
        verdict = "ok" if not bad else "FAIL: " + "; ".join(bad)
        rows.append(
            f"{k.arch:7} {name:58} {k.registers:>4} {reg_max if reg_max is not None else '?':>4} {k.stack:>5} "
            f"{k.local:>5} {k.shared:>6} {shared_max if shared_max is not None else '?':>6} {wide:>9}  {verdict}"
        )
        problems += [f"{k.arch} {name}: {b}" for b in bad]
    return rows, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library", type=Path)
    parser.add_argument("--cuobjdump", required=True)
    args = parser.parse_args(argv)
    try:
        res = subprocess.run([args.cuobjdump, "-res-usage", str(args.library)], capture_output=True, text=True, check=True)
        sass = subprocess.run([args.cuobjdump, "-sass", str(args.library)], capture_output=True, text=True, check=True)
        kernels = parse_res_usage(res.stdout)
        for k, name in zip(kernels, demangle([k.mangled for k in kernels]), strict=True):
            k.demangled = name
    except (OSError, subprocess.CalledProcessError, RuntimeError) as e:
        print(f"audit_cuda_binary: cannot read {args.library}: {e}", file=sys.stderr)
        return 2
    if not kernels:
        print(f"audit_cuda_binary: FAIL: no bdb kernels in {args.library}", file=sys.stderr)
        return 1
    rows, problems = audit(kernels, parse_sass(sass.stdout))
    print("\n".join(rows))
    if problems:
        print(f"audit_cuda_binary: FAIL ({len(problems)} violations):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"audit_cuda_binary: OK ({len(kernels)} kernels: no stack, no local memory, registers and shared memory "
          "within the occupancy model, 128-bit accesses in every 16-byte vector kernel)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
