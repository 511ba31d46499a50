"""Stage tests: the cuda-backend tests only (``pytest tests -k "cuda and not emulated"``: the
``cuda`` backend and device parameters of tests/conftest.py), with a junit XML.

The CPU and emulated backends are CI's job and are left out. At the soft deadline pytest gets
SIGINT, which still writes the junit XML of what ran; the stage is then "timeout" with those
results. A module that cannot be imported here (a missing optional package) is reported, and the
other modules still run (--continue-on-collection-errors). In the rehearsal the same command runs
on the CPU, where every selected test skips for want of a device.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from common import REPO_ROOT, Stage, StageSkipped, run_stage

SELECT = "cuda and not emulated"
INTERRUPT_GRACE_S = 20


def parse_junit(path: Path) -> dict[str, Any]:
    """Totals and the failing test ids (with the first line of their message) of a junit XML file."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    totals = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    totals["passed"] = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
    problems = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            element = case.find(kind)
            if element is not None:
                message = (element.get("message") or "").splitlines()[0][:300] if element.get("message") else ""
                problems.append(f"{kind}: {case.get('classname')}::{case.get('name')}: {message}")
    totals["problems"] = problems
    return totals


def body(stage: Stage) -> None:
    if importlib.util.find_spec("pytest") is None:
        raise StageSkipped("pytest is not installed (and could not be installed offline): no tests run")
    junit = stage.outdir / "tests.xml"
    junit.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "tests", "-k", SELECT, "-q", "-rs", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", f"--junitxml={junit}"]
    stage.results["command"] = " ".join(cmd[1:])
    log_path = stage.outdir / "tests_pytest.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        timeout = None if stage.deadline_s is None else max(stage.time_left(), 1.0)
        interrupted = False
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            interrupted = True
            proc.send_signal(signal.SIGINT)  # pytest writes the junit XML of what ran so far
            try:
                rc = proc.wait(timeout=INTERRUPT_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
    stage.results.update(exit_status=rc, interrupted=interrupted, log=log_path.name)
    if not junit.exists():
        if interrupted:
            stage.note("stopped at the deadline before pytest wrote its junit XML: no test result")
            stage.status_override = "timeout"
        else:
            stage.fail(f"pytest wrote no junit XML (exit {rc}); see {log_path.name}")
        return
    totals = parse_junit(junit)
    stage.results.update(junit=junit.name, **totals)
    stage.checkpoint()
    stage.headline = (f"{totals['passed']} passed, {totals['failures']} failed, {totals['errors']} errors, "
                      f"{totals['skipped']} skipped")
    for problem in totals["problems"][:30]:
        stage.fail(problem)
    if interrupted:
        stage.note("stopped at the deadline: the counts cover the tests that ran")
        stage.status_override = "fail" if stage.failures else "timeout"
    elif rc not in (0, 5) and not stage.failures:
        stage.fail(f"pytest exited {rc}; see {log_path.name}")
    if not stage.rehearse and totals["passed"] == 0:
        stage.fail("no cuda test passed (all skipped?): the GPU run proved nothing")


if __name__ == "__main__":
    sys.exit(run_stage("tests", body))
