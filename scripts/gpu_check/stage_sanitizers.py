"""Stage sanitizers: compute-sanitizer memcheck, racecheck, synccheck and initcheck, each over the
standalone op driver (sanitizer_driver.py), checking only the bdb kernels.

- ``--kernel-name kns=<BDB_SANITIZER_KERNELS, default "bdb">``: the bdb kernels live in namespace
  ``bdb`` (mangled ``_ZN3bdb...``), so only they are instrumented; PyTorch's own kernels run
  unchecked (and at full speed). A compute-sanitizer whose --help has no --kernel-name runs
  unfiltered, and the result says so. First, a positive control (the driver's ``--control``: a
  bdb kernel reading never-written memory) must be reported by initcheck through the same filter;
  otherwise the filter selects nothing and every tool would pass vacuously, so the stage fails.
- memcheck runs without leak checking (PyTorch keeps allocations alive on purpose).
- PYTORCH_NO_CUDA_MEMORY_CACHING=1: every tensor is its own allocation, so an overrun past a
  tensor is caught instead of landing in the next block of a cached segment.

The stage's time is shared evenly among the tools left; a tool that overruns its share is stopped
and marked "timeout". In the rehearsal the driver runs once on the emulated kernels, without
compute-sanitizer.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import Any

from common import REPO_ROOT, Stage, StageSkipped, command_output, run_stage, tool_path

TOOLS = ("memcheck", "racecheck", "synccheck", "initcheck")
DRIVER = REPO_ROOT / "scripts" / "gpu_check" / "sanitizer_driver.py"
_ERROR_SUMMARY = re.compile(r"ERROR SUMMARY:\s*(\d+)\s+error")


def sanitizer_command(sanitizer: str, tool: str, driver_json: str, kernel_filter: str | None,
                      control: bool = False) -> list[str]:
    cmd = [sanitizer, "--tool", tool, "--error-exitcode", "99", "--print-limit", "50"]
    if kernel_filter:
        cmd += ["--kernel-name", f"kns={kernel_filter}"]
    if tool == "memcheck":
        cmd += ["--leak-check", "no"]
    return cmd + [sys.executable, str(DRIVER), "--library", "real", "--json", driver_json] + (
        ["--control"] if control else [])


def parse_sanitizer_log(text: str) -> dict[str, Any]:
    """Errors reported (sum of every ERROR SUMMARY line) and the driver's own verdict line."""
    errors = [int(m) for m in _ERROR_SUMMARY.findall(text)]
    verdict = next((line.strip() for line in reversed(text.splitlines()) if line.startswith("sanitizer_driver:")), None)
    return {"errors_reported": sum(errors) if errors else None, "driver_verdict": verdict}


def run_tool(stage: Stage, sanitizer: str, tool: str, share_s: float, kernel_filter: str | None,
             control: bool = False) -> dict[str, Any]:
    tag = f"{tool}_control" if control else tool
    log_path = stage.outdir / f"sanitizers_{tag}.log"
    driver_json = str(stage.outdir / f"sanitizers_{tag}_driver.json")
    env = dict(os.environ, PYTORCH_NO_CUDA_MEMORY_CACHING="1")
    cmd = sanitizer_command(sanitizer, tool, driver_json, kernel_filter, control)
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
        try:
            rc = proc.wait(timeout=None if share_s == float("inf") else max(share_s, 1.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
    text = log_path.read_text(errors="replace")
    row = {"tool": tag, "exit_status": rc, "seconds": round(time.monotonic() - t0, 1), "log": log_path.name,
           "kernel_filter": kernel_filter, "command": " ".join(cmd), **parse_sanitizer_log(text)}
    if rc is None:
        row["status"] = "timeout"
    elif rc == 0 and row["errors_reported"] in (0, None):
        row["status"] = "pass"
    else:
        row["status"] = "fail"
    return row


def filter_supported(sanitizer: str) -> bool:
    """Whether this compute-sanitizer has --kernel-name (its --help says so)."""
    try:
        out = subprocess.run([sanitizer, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--kernel-name" in out.stdout + out.stderr


def positive_control(stage: Stage, sanitizer: str, kernel_filter: str | None) -> dict[str, Any]:
    """initcheck through the filter on a planted uninitialized read; it must report it."""
    row = run_tool(stage, sanitizer, "initcheck", max(min(stage.time_left() / 5, 60), 20), kernel_filter, control=True)
    row["status"] = "pass" if row["exit_status"] == 99 and (row["errors_reported"] or 0) > 0 else "fail"
    return row


def rehearse(stage: Stage) -> None:
    """The driver (and its positive control) on the emulated kernels, without compute-sanitizer."""
    stage.note("rehearsal: the driver on the emulated kernels, without compute-sanitizer")
    driver = [sys.executable, str(DRIVER), "--library", "emulated"]
    proc = subprocess.run(driver + ["--json", str(stage.outdir / "sanitizers_driver.json")], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    (stage.outdir / "sanitizers_driver.log").write_text(proc.stdout + proc.stderr)
    control = subprocess.run(driver + ["--control"], cwd=REPO_ROOT, capture_output=True, text=True)
    stage.results["positive_control"] = {"status": "pass" if control.returncode == 0 else "fail",
                                         "why": "rehearsal: the control runs; only initcheck can detect its read"}
    stage.results["tools"] = [{"tool": "emulated-driver", "status": "pass" if proc.returncode == 0 else "fail",
                               "exit_status": proc.returncode, "log": "sanitizers_driver.log",
                               **parse_sanitizer_log(proc.stdout)}]
    stage.checkpoint()
    if proc.returncode != 0:
        stage.fail("the op driver failed on the emulated kernels: see sanitizers_driver.log")
    if control.returncode != 0:
        stage.fail(f"the driver's --control failed: {control.stderr[-1000:]}")
    stage.headline = parse_sanitizer_log(proc.stdout)["driver_verdict"] or "no verdict from the driver"


def body(stage: Stage) -> None:
    if stage.rehearse:
        rehearse(stage)
        return
    sanitizer = tool_path("compute-sanitizer")
    if sanitizer is None:
        raise StageSkipped("compute-sanitizer not found (CUDA_HOME/bin, /usr/local/cuda/bin, PATH)")
    kernel_filter = os.environ.get("BDB_SANITIZER_KERNELS", "bdb") or None
    if kernel_filter and not filter_supported(sanitizer):
        stage.note(f"{sanitizer} has no --kernel-name: every kernel is checked (PyTorch's too)")
        kernel_filter = None
    rows: list[dict[str, Any]] = []
    stage.results.update(sanitizer=sanitizer, version=command_output([sanitizer, "--version"]),
                         kernel_filter=kernel_filter, tools=rows)
    control = positive_control(stage, sanitizer, kernel_filter)
    stage.results["positive_control"] = control
    if control["status"] != "pass":
        stage.fail(f"initcheck did not report the planted uninitialized read in a bdb kernel (exit "
                   f"{control['exit_status']}, {control['errors_reported']} errors; {control['log']}): with "
                   f"filter {kernel_filter!r} the tools may be checking nothing")
    stage.checkpoint()
    for i, tool in enumerate(TOOLS):
        share = stage.time_left() / (len(TOOLS) - i)
        if share < 5:
            rows.append({"tool": tool, "status": "timeout", "note": "no time left"})
            continue
        print(f"[sanitizers] {tool} (up to {share:.0f} s)", flush=True)
        row = run_tool(stage, sanitizer, tool, share, kernel_filter)
        rows.append(row)
        if row["status"] == "fail":
            stage.fail(f"{tool}: {row['errors_reported']} error(s) reported, exit {row['exit_status']} "
                       f"({row['log']})")
        stage.checkpoint()
    if any(r["status"] == "timeout" for r in rows) and not stage.failures:
        stage.status_override = "timeout"
    stage.headline = "; ".join(f"{r['tool']} {r['status']}" + (f" ({r.get('errors_reported')} errors)"
                                                                if r.get("errors_reported") else "") for r in rows)


if __name__ == "__main__":
    sys.exit(run_stage("sanitizers", body))
