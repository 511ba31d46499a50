"""The emulation harness itself: every case of harness_selftest.cpp (barriers with early-returning
threads, shuffles of every kind, width and type checked lane by lane, votes, atomics, error reports
for misuse, a 64 x 256 launch well under a second), under both executors: fibers (the default
outside sanitizer builds) and the real-thread pool (what TSan/ASan builds use)."""

from __future__ import annotations

import re

import pytest

from native_programs import build_program, run_program

CASES = [
    "atomics",
    "barrier_throughput",
    "errors_reported",
    "indices",
    "launch_speed",
    "params_are_copies",
    "shuffles",
    "split_warp",
    "syncthreads_count_and_or",
    "syncthreads_early_return",
    "votes",
    "warp_reductions",
]


@pytest.fixture(scope="module")
def selftest():
    return build_program("harness_selftest.cpp")


def test_case_list_is_complete(selftest):
    listed = run_program(selftest, "--list").stdout.split()
    assert listed == sorted(CASES)


@pytest.mark.parametrize("executor", ["fibers", "threads"])
@pytest.mark.parametrize("case", CASES)
def test_harness_case(selftest, case, executor):
    result = run_program(selftest, case, timeout=120, env={"BDB_EMU_EXECUTOR": executor})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"PASS {case}" in result.stdout
    assert f"({executor})" in result.stdout


def test_misuse_is_reported_with_its_location(selftest):
    out = run_program(selftest, "errors_reported").stdout
    # Each report names what went wrong and where, so a failing kernel can be debugged from CI logs.
    assert "deadlock: every live thread of the block waits" in out
    assert "__syncwarp(mask 0xffffffff) at harness_selftest.cpp" in out
    assert re.search(r"reads lane \d+, which has already returned", out)
    assert "divergent barrier" in out
    assert "invalid configuration argument" in out
