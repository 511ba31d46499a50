"""Predicted beside measured: the performance model (benchmarks/perf_model.py) when it exists.

``predict(op, pass_, shape, dtype, gpu)`` there returns ``dict(bytes, flops, us, floor_us)``; this
module imports it if present and otherwise gives nulls, so a result row always has the same keys.
Measured bandwidth is reported against the D2D copy bandwidth measured in the same run.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from common import REPO_ROOT

__all__ = ["DTYPE_NAMES", "model_available", "predicted", "rate_row"]

DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
               torch.float64: "float64"}

_model: Any = None
_model_error: str | None = None


def _load_model() -> Any:
    global _model, _model_error
    if _model is None and _model_error is None:
        path = str(REPO_ROOT / "benchmarks")
        if path not in sys.path:
            sys.path.insert(0, path)
        try:
            import perf_model
        except ImportError as error:
            _model_error = f"benchmarks/perf_model.py not importable ({error}); predicted_us / floor_us are null"
        else:
            _model = perf_model
    return _model


def model_available() -> tuple[bool, str | None]:
    """(whether the model is there, why not)."""
    return _load_model() is not None, _model_error


def model_gpu() -> str:
    """The model's name for the GPU present: "H100" for an H100, else "H200" (the machine this check is sized for)."""
    if torch.cuda.is_available() and "H100" in torch.cuda.get_device_name(0):
        return "H100"
    return "H200"


def predicted(op: str, pass_: str, shape: dict[str, float], dtype: torch.dtype) -> dict[str, Any]:
    """The model's prediction as {predicted_us, floor_us, model_bytes}; nulls without a model or on its error.

    shape: {"N", "C", "H", "W"} (optionally "drop_rows", the dropped fraction of rows) or {"N", "D"}.
    """
    out: dict[str, Any] = {"predicted_us": None, "floor_us": None, "model_bytes": None}
    model = _load_model()
    if model is None:
        return out
    try:
        p = model.predict(op, pass_, shape, dtype, gpu=model_gpu())
    except Exception as error:  # noqa: BLE001 - a model bug must not cost the measured numbers
        out["model_error"] = f"{type(error).__name__}: {error}"
        return out
    out.update(predicted_us=p.get("us"), floor_us=p.get("floor_us"), model_bytes=p.get("bytes"))
    return out


def rate_row(median_us: float, nominal_bytes: int, copy_gbps: float | None, floor_us: float | None) -> dict[str, Any]:
    """GB/s over the op's nominal bytes, that as % of the measured copy bandwidth, and % of the model's floor."""
    gbps = nominal_bytes / (median_us * 1e3) if median_us > 0 else None
    return {
        "nominal_bytes": nominal_bytes,
        "gbps": None if gbps is None else round(gbps, 1),
        "pct_of_copy_bw": None if gbps is None or not copy_gbps else round(100 * gbps / copy_gbps, 1),
        "pct_of_floor": None if not floor_us or median_us <= 0 else round(100 * floor_us / median_us, 1),
    }
