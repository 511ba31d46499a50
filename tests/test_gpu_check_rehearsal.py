"""The GPU check rehearsed on the CPU (``scripts/gpu_check.sh --rehearse``), so that GPU time is never
spent debugging the script: every stage runs its real driver with tiny shapes (the emulated CUDA
kernels where kernels are needed), and each stage's result files are checked here. A second run
injects a failure and a hang and checks that the other stages' results are intact.

About 3 minutes on 2 idle cores (the op driver on the emulated kernels and the training steps are
most of it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
sys.path.insert(0, str(ROOT / "scripts" / "gpu_check"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import stages  # noqa: E402
import summarize  # noqa: E402

STAGE_NAMES = [s.name for s in stages.STAGES]


def run_check(outdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BDB_GPU_CHECK_")}
    full_env.update(PYTHON=sys.executable, **env)
    return subprocess.run(["bash", str(SCRIPT), "--rehearse", *args, str(outdir)], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=1800)


def load(outdir: Path, name: str) -> dict:
    return json.loads((outdir / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory) -> Path:
    outdir = tmp_path_factory.mktemp("gpu_check_rehearsal")
    proc = run_check(outdir)
    assert proc.returncode == 0, f"rehearsal failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    return outdir


def test_budgets_fit_the_gpu_window_and_match_the_docs():
    assert stages.total_budget_s() <= 12 * 60
    assert all(s.budget_s <= 8 * 60 for s in stages.STAGES)
    table = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check" / "stages.py"), "--table"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert table in (ROOT / "docs" / "testing.md").read_text(), "docs/testing.md's budget table is out of date"


def test_every_stage_passes_and_writes_its_files(rehearsal):
    summary = load(rehearsal, "summary")
    assert summary["rehearsal"] is True
    assert [s["name"] for s in summary["stages"]] == STAGE_NAMES
    for entry in summary["stages"]:
        assert entry["status"] == "pass", entry
        assert entry["seconds"] >= 0 and entry["exit_status"] == 0
        doc = load(rehearsal, entry["name"])
        assert doc["status"] == "pass" and doc["rehearsal"] is True and doc["failures"] == []
        assert doc["error"] is None and doc["headline"]
        assert (rehearsal / f"{entry['name']}.log").read_text().strip()
    assert "| runtime | pass |" in (rehearsal / "summary.md").read_text()


def test_build_stage_parses_ptxas_and_checks_the_library(rehearsal):
    res = load(rehearsal, "build")["results"]
    assert res["ptxas"] and all(k["registers"] > 0 and "stack_bytes" in k for k in res["ptxas"])
    assert res["build_info"]["cuda"] is True and res["binary_check_exit_status"] == 0
    assert "ptxas info" in (rehearsal / "build_compile.log").read_text()


def test_tests_stage_writes_junit(rehearsal):
    res = load(rehearsal, "tests")["results"]
    assert (rehearsal / "tests.xml").exists()
    assert res["tests"] > 50 and res["failures"] == 0 and res["errors"] == 0
    # No device here: every cuda-backend test skips; the few selected tests that need no device (the cuobjdump
    # parser on canned output, the fake-CUDA host-sync audit, "cuda" device strings in config checks) pass.
    assert res["skipped"] >= 0.9 * res["tests"]


def test_sanitizer_driver_ran_every_case_clean(rehearsal):
    driver = json.loads((rehearsal / "sanitizers_driver.json").read_text())
    assert driver["library"] == "emulated" and driver["cases"] > 300 and driver["failures"] == []


def test_op_benchmarks_cover_the_matrix(rehearsal):
    res = load(rehearsal, "bench_ops")["results"]
    assert res["copy"]["gbps"] > 0
    cases = res["cases"]
    keys = {(c["op"], c["pass"], c["layout"], c["dtype"]) for c in cases}
    assert len(keys) == len(cases) == 2 * 3 * 2 * 3 and res["skipped"] == []
    for c in cases:
        assert set(c["variants"]) == {"fused", "reference", "compiled"}
        assert all(v.get("median_us", 0) > 0 for v in c["variants"].values()), c
        assert c["gbps"] is not None and c["reference_over_fused"] > 0 and c["compiled_over_fused"] > 0
        assert {"predicted_us", "floor_us", "pct_of_floor"} <= set(c)
        if c["pass"] == "fwd":
            assert c["fused_equals_reference"] is True


def test_mining_benchmarks_compare_every_variant(rehearsal):
    res = load(rehearsal, "bench_mining")["results"]
    assert len(res["cases"]) == 4
    for c in res["cases"]:
        assert {"fused", "reference", "mask", "compiled"} <= set(c["variants"])
        assert all("error" not in v for v in c["variants"].values()), c
        assert c["reference_over_fused"] > 0


def test_training_step_benchmark(rehearsal):
    res = load(rehearsal, "bench_train")["results"]
    assert res["variants"]["fused"]["median_us"] > 0 and res["variants"]["reference"]["median_us"] > 0
    assert res["reference_over_fused"] > 0


def test_runtime_checks(rehearsal):
    res = load(rehearsal, "runtime")["results"]
    for name in ("sync_debug", "cuda_graph", "determinism", "large_drop", "large_pool"):
        assert res[name]["status"] == "pass", res[name]


def test_summarize_writes_only_the_gpu_section(rehearsal, tmp_path):
    readme = ROOT / "benchmarks" / "README.md"
    text = readme.read_text()
    assert text.count(summarize.BEGIN) == 1 and text.count(summarize.END) == 1
    inside = text.split(summarize.BEGIN)[1].split(summarize.END)[0].strip()
    # The committed README holds either the placeholder or a real GPU run, never a rehearsal.
    assert inside == summarize.NOT_MEASURED or inside.startswith("Measured")
    copy = tmp_path / "README.md"
    shutil.copy(readme, copy)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "summarize.py"), "--gpu", str(rehearsal), "--write-readme",
           "--readme", str(copy)]
    refused = subprocess.run(cmd, capture_output=True, text=True)
    assert refused.returncode != 0 and "rehearsal" in refused.stderr and copy.read_text() == text
    subprocess.run(cmd + ["--allow-rehearsal"], capture_output=True, text=True, check=True)
    new = copy.read_text()
    assert new.split(summarize.BEGIN)[0] == text.split(summarize.BEGIN)[0]
    assert new.split(summarize.END)[1] == text.split(summarize.END)[1]
    body = new.split(summarize.BEGIN)[1].split(summarize.END)[0]
    assert "CPU REHEARSAL" in body and "| drop_pool_max | fwd+bwd | nchw | float32 |" in body
    assert "| step |" in body and "kernels.md targets:" in body


def test_a_failed_and_a_timed_out_stage_leave_the_others_intact(tmp_path):
    proc = run_check(tmp_path, "--only", "build,tests,bench_mining",
                     BDB_GPU_CHECK_INJECT="build=hang,tests=fail", BDB_GPU_CHECK_BUDGET_BUILD="40")
    assert proc.returncode == 1, proc.stdout[-4000:]
    summary = load(tmp_path, "summary")
    assert [(s["name"], s["status"]) for s in summary["stages"]] == [
        ("build", "timeout"), ("tests", "fail"), ("bench_mining", "pass")]
    build = load(tmp_path, "build")  # killed: the driver marks the partial result it left
    assert build["status"] == "timeout" and any("time budget" in n for n in build["notes"])
    assert build["results"]["arch"]  # saved at the checkpoint before the hang
    tests = load(tmp_path, "tests")  # failed after its checkpoint: the counts it had are kept
    assert tests["status"] == "fail" and "injected failure" in tests["error"] and tests["results"]["tests"] > 0
    mining = load(tmp_path, "bench_mining")
    assert mining["status"] == "pass" and len(mining["results"]["cases"]) == 4
    assert "build: timeout" in proc.stdout


def test_ptxas_parser_reads_registers_spills_and_shared_memory():
    import stage_build

    log = """ptxas info    : Compiling entry function '_ZN3bdb4kernIfEEvPT_' for 'sm_90'
ptxas info    : Function properties for _ZN3bdb4kernIfEEvPT_
    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 4224 bytes smem, 400 bytes cmem[0]
ptxas info    : Compiling entry function '_Z5otherv' for 'sm_90'
ptxas info    : Function properties for _Z5otherv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 12 registers, used 0 barriers
"""
    first, second = stage_build.parse_ptxas(log)
    assert first == {"kernel": "_ZN3bdb4kernIfEEvPT_", "arch": "sm_90", "stack_bytes": 16, "spill_store_bytes": 8,
                     "spill_load_bytes": 4, "registers": 255, "smem_bytes": 4224}
    assert second["kernel"] == "_Z5otherv" and second["registers"] == 12 and "smem_bytes" not in second


def test_sanitizer_log_parser_sums_error_summaries():
    import stage_sanitizers

    log = "========= ERROR SUMMARY: 0 errors\nsanitizer_driver: 368 cases, 0 failed, 3.2 s\n" \
          "========= ERROR SUMMARY: 3 errors\n"
    assert stage_sanitizers.parse_sanitizer_log(log) == {
        "errors_reported": 3, "driver_verdict": "sanitizer_driver: 368 cases, 0 failed, 3.2 s"}
    assert stage_sanitizers.parse_sanitizer_log("no summary")["errors_reported"] is None


@pytest.mark.parametrize("doc, exit_status, want", [
    ({"status": "pass"}, 0, "pass"),
    ({"status": "pass"}, 124, "timeout"),  # killed by timeout(1) after its last save
    ({"status": "running"}, 137, "timeout"),
    ({"status": "running"}, 0, "fail"),  # ended without its final status
    (None, 1, "fail"),  # crashed before writing anything
    ({"status": "pass"}, 1, "fail"),  # a result file that disagrees with the exit status
    ({"status": "skipped"}, 0, "skipped"),
])
def test_driver_status_of_a_stage(doc, exit_status, want):
    import record

    assert record.final_status(doc, exit_status)[0] == want


FAKE_SANITIZER = r"""#!/usr/bin/env bash
# Stands in for compute-sanitizer: runs the driver's control case on the emulated kernels and
# reports what a real one would (the control's read; FAKE_FAILING_TOOL's errors; else none).
case "$1" in
  --help) echo "  --kernel-name <filter>  Filter the kernels"; exit 0 ;;
  --version) echo "Fake Compute Sanitizer"; exit 0 ;;
esac
tool=""
while [[ "$1" == --* ]]; do [[ "$1" == --tool ]] && tool="$2"; echo "option $1 $2"; shift 2; done
control=0
json=""
args=("$@")
for i in "${!args[@]}"; do
  [[ "${args[$i]}" == --control ]] && control=1
  [[ "${args[$i]}" == --json ]] && json="${args[$((i + 1))]}"
done
"$1" "$2" --library emulated --control --json "$json" || exit 1
if ((control)); then echo "========= ERROR SUMMARY: 1 error"; exit 99; fi
if [[ "$tool" == "${FAKE_FAILING_TOOL:-}" ]]; then echo "========= ERROR SUMMARY: 2 errors"; exit 99; fi
echo "========= ERROR SUMMARY: 0 errors"
"""


def test_sanitizer_stage_gpu_path_with_a_stand_in_sanitizer(tmp_path):
    # The stage's GPU path (tool discovery, filter probe, positive control, the four tools, time
    # shares, log parsing, statuses) with a fake compute-sanitizer that one tool's errors fail.
    fake = tmp_path / "cuda" / "bin" / "compute-sanitizer"
    fake.parent.mkdir(parents=True)
    fake.write_text(FAKE_SANITIZER)
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BDB_")}
    env.update(CUDA_HOME=str(tmp_path / "cuda"), FAKE_FAILING_TOOL="racecheck", PYTHONPATH=str(ROOT))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check" / "stage_sanitizers.py"), str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = load(out, "sanitizers")
    res = doc["results"]
    assert doc["status"] == "fail" and res["sanitizer"] == str(fake) and res["kernel_filter"] == "bdb"
    assert res["positive_control"]["status"] == "pass" and res["positive_control"]["errors_reported"] == 1
    assert [(t["tool"], t["status"], t["errors_reported"]) for t in res["tools"]] == [
        ("memcheck", "pass", 0), ("racecheck", "fail", 2), ("synccheck", "pass", 0), ("initcheck", "pass", 0)]
    assert len(doc["failures"]) == 1 and doc["failures"][0].startswith("racecheck: 2 error(s)")
    memcheck_log = (out / "sanitizers_memcheck.log").read_text()
    assert "option --kernel-name kns=bdb" in memcheck_log and "option --leak-check no" in memcheck_log
    assert "--leak-check" not in res["tools"][1]["command"]


def test_tests_stage_stopped_at_its_deadline_is_a_timeout(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check" / "stage_tests.py"), str(tmp_path),
                           "--rehearse", "--deadline-s", "1"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    doc = load(tmp_path, "tests")
    assert proc.returncode == 1 and doc["status"] == "timeout" and doc["results"]["interrupted"] is True
