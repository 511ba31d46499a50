"""Pieces the benchmark stages share: compiling the reference forms, timing a group of variants, running the
cases within the stage's time, the speed-up ratios against the fused kernels and their targets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from common import Stage
from timing import interleaved_times, summarize_times

__all__ = ["compile_fn", "compile_backend", "measure_cases", "over_fused", "speedup_targets", "time_group"]


def compile_backend(stage: Stage) -> str:
    """inductor on a GPU; aot_eager in the rehearsal (the same Dynamo + AOTAutograd path, minutes cheaper)."""
    return "aot_eager" if stage.rehearse else "inductor"


def compile_fn(stage: Stage, fn: Callable[..., Any]) -> Callable[..., Any]:
    """torch.compile of ``fn`` with room for one graph per dtype x layout x grad mode of a stage."""
    import torch._dynamo
    import torch._functorch.config

    # The bwd pass is timed by calling backward repeatedly on one graph (retain_graph=True), which
    # AOTAutograd refuses for a graph that donated its saved buffers.
    if hasattr(torch._functorch.config, "donated_buffer"):
        torch._functorch.config.donated_buffer = False
    for knob in ("cache_size_limit", "recompile_limit"):  # the name changed across torch versions
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, max(getattr(torch._dynamo.config, knob), 256))
    return torch.compile(fn, backend=compile_backend(stage))


def time_group(stage: Stage, factories: dict[str, Callable[[], Callable[[], object]]]) -> dict[str, dict[str, Any]]:
    """Each variant's timing summary (interleaved, warmed up), or {"error": ...} for a variant that fails.

    ``factories[name]()`` builds the variant's step. Each step is built and tried once first
    (compilation happens there), so a variant that raises is reported and left out instead of
    costing the others their numbers.
    """
    out: dict[str, dict[str, Any]] = {}
    ok: dict[str, Callable[[], object]] = {}
    for name, factory in factories.items():
        try:
            step = factory()
            step()
        except Exception as error:  # noqa: BLE001 - reported per variant
            out[name] = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
        else:
            ok[name] = step
    warmup, reps = (1, 3) if stage.rehearse else (3, 20)
    if ok:
        for name, times in interleaved_times(ok, stage.device, warmup=warmup, reps=reps).items():
            out[name] = summarize_times(times)
    return out


def over_fused(variants: dict[str, dict[str, Any]], fused_us: float, names: Iterable[str]) -> dict[str, float | None]:
    """``{name}_over_fused`` for each of ``names``: its median time over the fused one's ``fused_us`` (None for a
    variant without a median: it failed or was not run)."""
    out: dict[str, float | None] = {}
    for name in names:
        median = variants.get(name, {}).get("median_us")
        out[f"{name}_over_fused"] = round(median / fused_us, 3) if median else None
    return out


def speedup_targets(label: str, row: dict[str, Any], want_vs_reference: float | None) -> list[dict[str, Any]]:
    """The targets on a row's ratios (see :func:`over_fused`): the fused kernel at least as fast as torch.compile
    and, where ``want_vs_reference`` is given, at least that many times faster than the reference."""
    out = []
    if row.get("compiled_over_fused") is not None:
        out.append({"target": f"{label}: fused >= compiled", "value": row["compiled_over_fused"],
                    "met": row["compiled_over_fused"] >= 1.0})
    if want_vs_reference is not None and row.get("reference_over_fused") is not None:
        out.append({"target": f"{label}: >= {want_vs_reference}x reference", "value": row["reference_over_fused"],
                    "met": row["reference_over_fused"] >= want_vs_reference})
    return out


def measure_cases(stage: Stage, cases: Iterable[tuple[str, Callable[[], dict[str, Any]]]],
                  targets: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each ``(label, measure)`` case's row, appended to ``stage.results["cases"]`` as it comes (the targets
    re-scored and the results saved after each, so a stage killed mid-way keeps what it measured).

    Once the stage's time runs short, the remaining cases are listed in ``stage.results["skipped"]`` unmeasured
    and the stage ends as "timeout".
    """
    rows: list[dict[str, Any]] = stage.results.setdefault("cases", [])
    skipped: list[str] = stage.results.setdefault("skipped", [])
    for label, measure in cases:
        if stage.out_of_time(reserve_s=10):
            skipped.append(label)
            continue
        print(f"[{stage.name}] {label}", flush=True)
        rows.append(measure())
        stage.results["targets"] = targets(rows)
        stage.checkpoint()
    if skipped:
        stage.note(f"out of time: {len(skipped)} cases not measured")
        stage.status_override = "timeout"
    return rows
