"""scripts/audit_cuda_binary.py reads cuobjdump's output right and fails on each kind of violation
(the CI run on the built library only ever sees a passing binary)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import audit_cuda_binary as audit_mod  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("c++filt") is None, reason="c++filt (binutils) not installed")

DROP_HALF8 = "_ZN3bdb17drop_block_kernelIN3c104HalfELi8EEEvPKT_PS3_NS_9MapLayoutENS_7RectArgE"
POOL_FLOAT1 = "_ZN3bdb23drop_pool_planes_kernelIfLi1ELb1EEEvPKT_PS1_PlllliNS_7RectArgE"

RES_USAGE = f"""
Fatbin elf code:
================
arch = sm_90
code version = [1,8]
identifier = drop_cuda.cu

Resource usage:
 Common:
  GLOBAL:0
 Function {DROP_HALF8}:
  REG:{{reg}} STACK:{{stack}} SHARED:0 LOCAL:{{local}} CONSTANT[0]:632 TEXTURE:0 SURFACE:0 SAMPLER:0
 Function {POOL_FLOAT1}:
  REG:30 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:632 TEXTURE:0 SURFACE:0 SAMPLER:0
 Function _ZN2at6native18elementwise_kernelILi128ELi2EEEviT1_:
  REG:80 STACK:40 SHARED:0 LOCAL:8 CONSTANT[0]:632 TEXTURE:0 SURFACE:0 SAMPLER:0
"""

SASS = f"""
	code for sm_90
		Function : {DROP_HALF8}
        /*0100*/                   {{load}} R4, desc[UR4][R2.64] ;
		Function : {POOL_FLOAT1}
        /*0100*/                   LDG.E R4, desc[UR4][R2.64] ;
"""


def run_audit(reg=32, stack=0, local=0, load="LDG.E.128"):
    kernels = audit_mod.parse_res_usage(RES_USAGE.format(reg=reg, stack=stack, local=local))
    for k, name in zip(kernels, audit_mod.demangle([k.mangled for k in kernels]), strict=True):
        k.demangled = name
    rows, problems = audit_mod.audit(kernels, audit_mod.parse_sass("arch = sm_90\n" + SASS.format(load=load)))
    return kernels, rows, problems


def test_a_clean_binary_passes_and_only_bdb_kernels_are_audited():
    kernels, rows, problems = run_audit()
    assert [k.mangled for k in kernels] == [DROP_HALF8, POOL_FLOAT1]
    assert problems == []
    assert "drop_block_kernel<c10::Half, 8>" in rows[2] and "LDG.128" in rows[2]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"stack": 40}, "stack frame of 40 B"),
        ({"local": 16}, "16 B local memory"),
        ({"reg": 56}, "56 registers > 40"),
        ({"load": "LDG.E.64"}, "without LDG.E.128"),
    ],
)
def test_each_violation_fails(kwargs, message):
    _, _, problems = run_audit(**kwargs)
    assert len(problems) == 1 and message in problems[0]
