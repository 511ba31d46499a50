"""Proof that the harness can fail: planted_kernels.cuh's shared-memory reduction with a bug planted
at compile time must be caught, and the same kernel without it must pass cleanly (no false reports).

* off-by-one (reads in[n]): a wrong sum against the reference;
* missing __syncthreads: a wrong sum under the fiber executor (each thread runs to its next barrier
  before the next one starts, so a read that needs the barrier sees the tile before its writer ran),
  and a ThreadSanitizer data race on the shared tile under the real-thread executor.

The AddressSanitizer form of the off-by-one runs in scripts/sanitize_emulated.sh.
"""

from __future__ import annotations

import pytest

from native_programs import build_program, run_program

TSAN_ENV = {"TSAN_OPTIONS": "halt_on_error=1 exitcode=66"}


def test_correct_kernel_passes():
    result = run_program(build_program("planted_bug_program.cpp"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all sums match" in result.stdout


def test_off_by_one_gives_a_wrong_result():
    result = run_program(build_program("planted_bug_program.cpp", ("-DBDB_PLANT_BUG_OFF_BY_ONE",)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "block_sum mismatch" in result.stdout


def test_missing_sync_gives_a_wrong_result_under_fibers():
    result = run_program(
        build_program("planted_bug_program.cpp", ("-DBDB_PLANT_BUG_MISSING_SYNC",)),
        env={"BDB_EMU_EXECUTOR": "fibers"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "block_sum mismatch" in result.stdout


@pytest.fixture(scope="module")
def tsan_programs():
    clean = build_program("planted_bug_program.cpp", ("-fsanitize=thread",))
    buggy = build_program("planted_bug_program.cpp", ("-fsanitize=thread", "-DBDB_PLANT_BUG_MISSING_SYNC"))
    return clean, buggy


def test_correct_kernel_is_race_free_under_tsan(tsan_programs):
    clean, _ = tsan_programs
    result = run_program(clean, env=TSAN_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ThreadSanitizer" not in result.stderr


def test_missing_sync_is_a_tsan_race(tsan_programs):
    _, buggy = tsan_programs
    result = run_program(buggy, env=TSAN_ENV)
    assert result.returncode == 66, result.stdout + result.stderr
    assert "WARNING: ThreadSanitizer: data race" in result.stderr
    # The report points at the tile write and the unsynchronised read in the kernel source.
    assert "planted_kernels.cuh" in result.stderr and "tile" in result.stderr
