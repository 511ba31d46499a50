"""What every stage of the GPU check shares: its command line, its result file, failure injection.

A stage is one command, ``python scripts/gpu_check/stage_<name>.py OUTDIR [--rehearse] [--deadline-s S]``.
It writes ``OUTDIR/<name>.json`` whenever it has something new (status "running" until it ends), so a
stage that is killed at its budget still leaves what it measured; when it ends it writes its final
status and prints one summary line. ``--rehearse`` runs the same code on the CPU with tiny shapes and,
where a CUDA kernel is needed, the CUDA source compiled for the CPU emulator (tests/emulated_library.py).

Result file (``OUTDIR/<name>.json``)::

    {"stage": str, "status": "running" | "pass" | "fail" | "timeout" | "skipped", "rehearsal": bool,
     "seconds": float, "started": ISO time, "environment": {...}, "headline": str, "notes": [str],
     "failures": [str], "error": str | None, "results": {...stage-specific...}}

Failure injection, to prove a failed or hung stage leaves the others intact: ``BDB_GPU_CHECK_INJECT=
"stage=fail,other=hang"`` makes that stage raise, or sleep until it is killed, at its first checkpoint
(after it has saved a partial result).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["REPO_ROOT", "Stage", "StageSkipped", "command_output", "load_ops", "run_stage", "tool_path"]

REPO_ROOT = Path(__file__).resolve().parents[2]
INJECT_ENV = "BDB_GPU_CHECK_INJECT"
STATUSES = ("running", "pass", "fail", "timeout", "skipped")


class StageSkipped(Exception):
    """Raised by a stage that cannot run here (a tool or package missing); the message says why."""


def _injection(stage: str) -> str | None:
    for item in os.environ.get(INJECT_ENV, "").split(","):
        name, _, mode = item.strip().partition("=")
        if name == stage:
            if mode not in ("fail", "hang"):
                raise ValueError(f"{INJECT_ENV}: mode for {stage!r} must be 'fail' or 'hang', got {mode!r}")
            return mode
    return None


def _environment(rehearse: bool) -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "host": platform.node(),
                           "cpus": os.cpu_count(),
                           "commit": command_output(["git", "-C", str(REPO_ROOT), "log", "-1", "--format=%h %s"])}
    try:
        import torch
    except ImportError:
        env["torch"] = None
        return env
    env.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    if torch.cuda.is_available() and not rehearse:
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                   gpu_memory_gib=round(props.total_memory / 2**30, 1), sms=props.multi_processor_count,
                   driver=command_output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]))
    return env


def command_output(cmd: list[str]) -> str | None:
    """A small command's output, lines joined by "; ", or None when it is missing or fails."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.strip().splitlines()
    return "; ".join(line.strip() for line in lines) if out.returncode == 0 and lines else None


class Stage:
    """One stage's run: its arguments, its result document, its deadline.

    Attributes:
        name: the stage name (the result file is ``outdir / f"{name}.json"``).
        rehearse: True on the CPU rehearsal (tiny shapes, emulated kernels).
        device: "cuda" on a GPU run, "cpu" in the rehearsal.
        results: the stage-specific part of the result file; mutate it, then :meth:`checkpoint`.
    """

    def __init__(self, name: str, argv: list[str] | None = None) -> None:
        parser = argparse.ArgumentParser(prog=f"gpu_check stage {name}")
        parser.add_argument("outdir", type=Path, help="where the result file goes")
        parser.add_argument("--rehearse", action="store_true", help="CPU rehearsal: tiny shapes, emulated kernels")
        parser.add_argument("--deadline-s", type=float, default=None,
                            help="seconds after which the stage stops starting new work (soft; none by default)")
        args = parser.parse_args(argv)
        self.name = name
        self.outdir: Path = args.outdir
        self.outdir.mkdir(parents=True, exist_ok=True)
        self.rehearse: bool = args.rehearse
        self.deadline_s: float | None = args.deadline_s
        self.device = "cpu" if self.rehearse else "cuda"
        self.results: dict[str, Any] = {}
        self.notes: list[str] = []
        self.failures: list[str] = []
        self.headline = ""
        self.status_override: str | None = None
        self._t0 = time.monotonic()
        self._started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self._injection = _injection(name)
        self._environment = _environment(self.rehearse)

    @property
    def path(self) -> Path:
        return self.outdir / f"{self.name}.json"

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def time_left(self) -> float:
        """Seconds left before the soft deadline (inf without one)."""
        return math.inf if self.deadline_s is None else self.deadline_s - self.elapsed()

    def out_of_time(self, reserve_s: float = 0.0) -> bool:
        """True once less than ``reserve_s`` seconds are left; the stage then marks what it skips."""
        return self.time_left() < reserve_s

    def note(self, message: str) -> None:
        """A remark that belongs in the result (what was skipped and why, what is approximate)."""
        self.notes.append(message)
        print(f"[{self.name}] note: {message}", flush=True)

    def fail(self, message: str) -> None:
        """A finding that makes the stage fail; the stage goes on with its other work."""
        self.failures.append(message)
        print(f"[{self.name}] FAIL: {message}", flush=True)

    def document(self, status: str, error: str | None = None) -> dict[str, Any]:
        return {"stage": self.name, "status": status, "rehearsal": self.rehearse,
                "seconds": round(self.elapsed(), 2), "started": self._started,
                "deadline_s": self.deadline_s, "environment": self._environment, "headline": self.headline,
                "notes": self.notes, "failures": self.failures, "error": error, "results": self.results}

    def save(self, status: str = "running", error: str | None = None) -> None:
        """Write the result file atomically (a reader never sees half a file)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.document(status, error), indent=1, default=str) + "\n")
        os.replace(tmp, self.path)

    def checkpoint(self) -> None:
        """Save the partial result; the place where an injected failure or hang happens."""
        self.save("running")
        if self._injection == "fail":
            self._injection = None
            raise RuntimeError(f"injected failure ({INJECT_ENV}) in stage {self.name}")
        if self._injection == "hang":
            print(f"[{self.name}] injected hang ({INJECT_ENV}): sleeping until killed", flush=True)
            while True:
                time.sleep(3600)


def run_stage(name: str, body: Callable[[Stage], None], argv: list[str] | None = None) -> int:
    """Run ``body(stage)``, write the final result file and the summary line; the exit status (0 = pass)."""
    stage = Stage(name, argv)
    stage.save("running")
    error = None
    try:
        body(stage)
        status = stage.status_override or ("fail" if stage.failures else "pass")
    except StageSkipped as skipped:
        status = "skipped"
        stage.note(str(skipped))
    except Exception as exc:  # noqa: BLE001 - every error must land in the result file
        status = "fail"
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        print(error, file=sys.stderr, flush=True)
    stage.save(status, error)
    detail = stage.headline or (error.splitlines()[0] if error else "")
    print(f"[gpu_check] {name}: {status} in {stage.elapsed():.1f} s{' - ' + detail if detail else ''}", flush=True)
    return 0 if status in ("pass", "skipped") else 1


def load_ops(stage: Stage) -> Any:
    """The op library the stage calls: ``bdb_ext.ops`` on a GPU, the emulated CUDA kernels in the rehearsal.

    Both expose batch_drop_block, drop_pool, pairwise_distance, batch_hard_mine and
    batch_hard_triplet_loss with the signatures of ``bdb_ext.ops``.
    """
    if not stage.rehearse:
        import bdb_ext

        info = bdb_ext.build_info()
        if not info.get("cuda"):
            raise RuntimeError(f"bdb_ext._C has no CUDA kernels (build_info {info}); run the build stage first")
        return bdb_ext.ops
    tests_dir = str(REPO_ROOT / "tests")
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    from emulated_library import load_emulated_library

    return load_emulated_library()


def tool_path(name: str) -> str | None:
    """A CUDA toolkit program (nvcc, compute-sanitizer, ...) from CUDA_HOME, /usr/local/cuda or PATH."""
    import shutil

    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    for home in filter(None, homes):
        for sub in ("bin", "compute-sanitizer"):
            candidate = Path(home) / sub / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which(name)
