"""Records one finished (or killed) stage in OUTDIR/summary.json and OUTDIR/summary.md.

Called by scripts/gpu_check.sh after every stage, so the summary is on disk after each one:

    python record.py OUTDIR NAME EXIT_STATUS SECONDS BUDGET_S [--rehearse]

The stage's own result file decides its status, except where the stage could not finish it: exit
124/137 (killed by ``timeout``) gives "timeout", a missing or still "running" file gives "fail"; the
result file is then rewritten with that status and its partial results kept.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["final_status", "record"]

TIMEOUT_EXIT = (124, 137)


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def final_status(doc: dict[str, Any] | None, exit_status: int) -> tuple[str, str | None]:
    """(status, why) of a stage from its result file (None if absent) and its exit status."""
    if exit_status in TIMEOUT_EXIT:
        return "timeout", f"killed at its time budget (exit {exit_status})"
    if doc is None:
        return "fail", f"exited {exit_status} without writing its result file"
    status = doc.get("status")
    if status == "running":
        return "fail", f"exited {exit_status} before writing its final status"
    if exit_status != 0 and status in ("pass", "skipped"):
        return "fail", f"result says {status} but the stage exited {exit_status}"
    return status, None


def record(outdir: Path, name: str, exit_status: int, seconds: float, budget_s: float | None,
           rehearse: bool) -> dict[str, Any]:
    """Finalise ``outdir/name.json`` and append the stage to summary.json / summary.md; returns its entry."""
    path = outdir / f"{name}.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        doc = None
    status, why = final_status(doc, exit_status)
    if doc is None:
        doc = {"stage": name, "rehearsal": rehearse, "results": {}, "notes": [], "failures": []}
    if why is not None:
        doc["status"] = status
        doc.setdefault("notes", []).append(f"driver: {why}")
        _write_json(path, doc)
    entry = {"name": name, "status": status, "seconds": round(seconds, 1), "budget_s": budget_s,
             "exit_status": exit_status, "headline": doc.get("headline") or why or ""}
    if why is not None:
        entry["driver_note"] = why

    summary_path = outdir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, json.JSONDecodeError):
        summary = {"rehearsal": rehearse, "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"), "environment": doc.get("environment"), "stages": []}
    summary["stages"] = [s for s in summary["stages"] if s["name"] != name] + [entry]
    if not summary.get("environment") or (doc.get("environment") or {}).get("gpu"):
        summary["environment"] = doc.get("environment") or summary.get("environment")
    _write_json(summary_path, summary)
    _write_markdown(outdir / "summary.md", summary)
    return entry


def _write_markdown(path: Path, summary: dict[str, Any]) -> None:
    env = summary.get("environment") or {}
    kind = "CPU rehearsal" if summary.get("rehearsal") else "GPU check"
    lines = [f"# bdb_ext {kind}", "",
             f"- started {summary.get('started')}; commit {env.get('commit')}",
             f"- GPU {env.get('gpu', 'none')} (sm {env.get('capability', '-')}); torch {env.get('torch')} "
             f"(CUDA {env.get('torch_cuda')}); {env.get('cpus')} CPUs", "",
             "| stage | status | seconds | budget | headline |", "| --- | --- | --- | --- | --- |"]
    for s in summary["stages"]:
        budget = "-" if s["budget_s"] is None else s["budget_s"]
        lines.append(f"| {s['name']} | {s['status']} | {s['seconds']} | {budget} | {s['headline']} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("name")
    parser.add_argument("exit_status", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("budget_s", help="seconds, or 'none'")
    parser.add_argument("--rehearse", action="store_true")
    args = parser.parse_args()
    budget = None if args.budget_s == "none" else float(args.budget_s)
    entry = record(args.outdir, args.name, args.exit_status, args.seconds, budget, args.rehearse)
    if "driver_note" in entry:  # the stage could not print its own summary line
        print(f"[gpu_check] {entry['name']}: {entry['status']} after {entry['seconds']} s - {entry['headline']}")


if __name__ == "__main__":
    main()
