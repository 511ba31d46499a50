"""Pieces the benchmark stages share: compiling the reference forms, timing a group of variants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


from common import Stage
from timing import interleaved_times, summarize_times

__all__ = ["compile_fn", "compile_backend", "time_group"]


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
