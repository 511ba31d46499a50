"""Fuzzing the public API with hypothesis: ops, layers, losses, evaluation and data parsing, with random bad arguments.

The contract every call is held to: it either returns the right result, or raises ValueError, TypeError or RuntimeError
whose message names the argument that is wrong. Each fuzzed argument is drawn as an :class:`Arg`: a well-formed value,
a tolerated variant (a tuple for a list, int32 labels: the call may refuse it, naming it, or must behave exactly as
the well-formed value), or a bad value (the call must refuse it, naming it). Any other exception (IndexError,
ZeroDivisionError, ...), an accepted bad value, or a wrong result fails the test.

The ops and everything built on them run native kernels, where a bad argument that slips through can crash the
process instead of raising; those fuzzers run in a child process (``python -c``), so that a segfault is reported as
a failure with the last case tried instead of taking pytest down. Evaluation and data parsing are pure Python/torch
and run in-process.

Runs are derandomised (the same examples on every machine, so a failure is reproducible and CI is not flaky);
``BDB_FUZZ_EXAMPLES=2000 BDB_FUZZ_RANDOM=1`` explores further.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bdb_ext
from bdb_ext import reference
from bdb_ext.data import RandomIdentitySampler, build_dataset, parse_market_name
from bdb_ext.evaluation import (cuhk03_rank_metrics, pairwise_distances, rank_metrics, re_ranking,
                                re_ranking_features, recall_at_k, recall_at_k_query_gallery)
from bdb_ext.layers.rectangles import draw_drop_rect
from bdb_ext.losses import BDBLoss

EXAMPLES = int(os.environ.get("BDB_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("BDB_FUZZ_RANDOM"),
                database=None, suppress_health_check=list(HealthCheck))
REFUSALS = (ValueError, TypeError, RuntimeError)


class _Refuse:
    def __repr__(self) -> str:
        return "MUST_REFUSE"


#: The ``valid`` of an argument that has no well-formed equivalent: the call must refuse it.
MUST_REFUSE: Any = _Refuse()


@dataclass(frozen=True)
class Arg:
    """One fuzzed argument: ``value`` is passed; ``valid`` is the well-formed value the call must behave as
    (MUST_REFUSE: none); ``may_refuse`` allows an error naming it even so (a tolerated variant)."""

    value: Any
    valid: Any
    may_refuse: bool = False

    @property
    def must_refuse(self) -> bool:
        return self.valid is MUST_REFUSE


def good(value: Any) -> Arg:
    return Arg(value, value)


def bad(value: Any) -> Arg:
    return Arg(value, MUST_REFUSE)


def variant(value: Any, valid: Any) -> Arg:
    return Arg(value, valid, may_refuse=True)


def _names_argument(message: str, names: list[str]) -> bool:
    return any(re.search(rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])", message) for name in names)


def check_contract(call: Callable[..., Any], args: dict[str, Arg], expected: Callable[[dict[str, Any]], Any],
                   compare: Callable[[Any, Any], None], aliases: dict[str, list[str]] | None = None,
                   data_refusal: str | None = None) -> None:
    """Call ``call(**values)`` and hold it to the module's contract.

    ``expected(valid values)`` computes the right result; ``compare(got, want)`` asserts they agree. ``aliases`` maps
    an argument to other names a message may use for it (a check of ``rect`` may say "top" or "height").
    ``data_refusal``: a ValueError message pattern that well-formed arguments can earn together (no query with a
    match; a batch larger than the identities).
    """
    print("case:", {k: _short(a.value) for k, a in args.items()}, file=sys.stderr, flush=True)
    refusable = [k for k, a in args.items() if a.must_refuse or a.may_refuse]
    names = refusable + [alias for k in refusable for alias in (aliases or {}).get(k, [])]
    try:
        got = call(**{k: a.value for k, a in args.items()})
    except REFUSALS as error:
        message = f"{type(error).__name__}: {error}"
        if data_refusal and isinstance(error, ValueError) and re.search(data_refusal, str(error)):
            return  # refused, naming the well-formed arguments that do not fit together (a bad one may come later)
        assert refusable, f"well-formed arguments were refused: {message}"
        assert _names_argument(str(error), names), f"the error does not name {refusable}: {message}"
        return
    assert not [k for k, a in args.items() if a.must_refuse], \
        f"bad {[k for k, a in args.items() if a.must_refuse]} accepted: {({k: _short(a.value) for k, a in args.items()})}"
    compare(got, expected({k: a.valid for k, a in args.items()}))


def _short(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}:{value.dtype}:{value.device}" + ("" if value.is_contiguous() else ":strided")
    if isinstance(value, np.ndarray):
        return f"ndarray{value.shape}:{value.dtype}"
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def assert_tensors_close(got: Any, want: Any) -> None:
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_tensors_close(g, w)
        return
    assert isinstance(got, torch.Tensor) and got.dtype == want.dtype and got.shape == want.shape, \
        f"got {_short(got)}, want {_short(want)}"
    low = want.dtype in (torch.float16, torch.bfloat16)
    torch.testing.assert_close(got, want, rtol=2e-2 if low else 1e-5, atol=2e-2 if low else 1e-5, equal_nan=True)


# --- shared strategies -------------------------------------------------------------------------------------------

NOT_A_TENSOR = st.sampled_from([None, 3, 2.5, "x", [[1.0, 2.0]], object()])
FLOAT_DTYPES = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16])


def _randn(shape: tuple[int, ...], seed: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


@st.composite
def float_tensors(draw: st.DrawFn, shape: tuple[int, ...], dtypes: st.SearchStrategy = FLOAT_DTYPES) -> torch.Tensor:
    """A finite float tensor of ``shape``: contiguous, channels_last (4-D) or a strided view."""
    dtype, seed = draw(dtypes), draw(st.integers(0, 2**16))
    layout = draw(st.sampled_from(["contiguous", "strided"] + (["channels_last"] if len(shape) == 4 else [])))
    if layout == "strided" and shape:
        return _randn((*shape[:-1], 2 * shape[-1]), seed, dtype)[..., ::2]
    x = _randn(shape, seed, dtype)
    return x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x


def bad_tensors(shape: tuple[int, ...]) -> st.SearchStrategy[Arg]:
    """Tensors the ops must refuse in place of a float tensor of ``shape``: other ranks, integer, boolean and
    complex dtypes, numpy arrays and non-tensors."""
    wrong_rank = [shape[:-1], (*shape, 1)] if shape else [(1,)]
    return st.one_of(
        NOT_A_TENSOR.map(bad),
        st.sampled_from(wrong_rank).map(lambda s: bad(torch.zeros(s))),
        st.sampled_from([torch.int64, torch.int32, torch.bool, torch.complex64]).map(
            lambda d: bad(torch.zeros(shape, dtype=d))),
        st.just(bad(np.zeros(shape, dtype=np.float32))),
    )


# --- ops (native; in a child process) ---------------------------------------------------------------------------


@st.composite
def drop_cases(draw: st.DrawFn) -> dict[str, Arg]:
    n, c, h, w = draw(st.integers(0, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    top, left = draw(st.integers(0, h)), draw(st.integers(0, w))
    rect = [top, left, draw(st.integers(0, h - top)), draw(st.integers(0, w - left))]
    x = good(draw(float_tensors((n, c, h, w))))
    rect_arg = draw(st.sampled_from([
        good(rect), variant(tuple(rect), rect), good(torch.tensor(rect)),
        variant(torch.tensor(rect, dtype=torch.int32), rect),
        bad(rect[:3]), bad(rect + [0]), bad([float(v) for v in rect]), bad([True, 0, 1, 1]),
        bad(torch.tensor(rect, dtype=torch.float32)), bad(torch.tensor([rect])), bad("rect"), bad(None),
        bad([-1, 0, 1, 1]), bad([0, -1, 1, 1]), bad([0, 0, -1, 1]), bad([0, 0, 1, -1]),
        bad([top, left, h - top + 1, 0]), bad([top, left, 0, w - left + 1]), bad([h + 1, 0, 0, 0]),
    ]))
    if draw(st.integers(0, 4)) == 0:
        x = draw(bad_tensors((n, c, h, w)))
    mode = draw(st.sampled_from([good("max"), good("avg"), bad("MAX"), bad(""), bad(None), bad(1)]))
    return {"x": x, "rect": rect_arg, "mode": mode}


def _drop_pool_expected(v: dict[str, Any]) -> torch.Tensor:
    return reference.drop_pool(v["x"], v["rect"], v["mode"])


@FUZZ
@given(case=drop_cases())
def fuzz_batch_drop_block(case: dict[str, Arg]) -> None:
    del case["mode"]
    check_contract(bdb_ext.ops.batch_drop_block, case, lambda v: reference.batch_drop_block(v["x"], v["rect"]),
                   assert_tensors_close, {"rect": ["top", "left", "height", "width"]})


@FUZZ
@given(case=drop_cases())
def fuzz_drop_pool(case: dict[str, Arg]) -> None:
    check_contract(lambda **kw: bdb_ext.ops.drop_pool(**kw)[0], case, _drop_pool_expected, assert_tensors_close,
                   {"rect": ["top", "left", "height", "width"]})


@st.composite
def mining_cases(draw: st.DrawFn) -> dict[str, Arg]:
    n, d = draw(st.integers(0, 6)), draw(st.integers(1, 4))
    dtypes = st.sampled_from([torch.float32, torch.float64])
    x = good(draw(float_tensors((n, d), dtypes)))
    labels = torch.tensor(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=torch.int64)
    labels_arg = draw(st.sampled_from([
        good(labels), variant(labels.int(), labels), bad(labels.float()), bad(labels.tolist() or None),
        bad(labels.unsqueeze(0)), bad(torch.cat([labels, labels[:1] if n else torch.zeros(1, dtype=torch.long)])),
    ]))
    if draw(st.integers(0, 4)) == 0:
        x = draw(bad_tensors((n, d)))
    m = draw(st.integers(0, 4))
    y = draw(st.sampled_from([
        good(None), good(_randn((m, d), m, x.valid.dtype if isinstance(x.valid, torch.Tensor) else torch.float32)),
        bad(torch.zeros(m, d + 1)), bad(torch.zeros(m, d, dtype=torch.int64)), bad("y"),
    ]))
    margin = draw(st.one_of(st.floats(0, 2).map(good), st.just(good(None)),
                            st.sampled_from([bad("0.3"), bad(math.inf), bad(math.nan), bad([0.3]), bad(True)])))
    reduction = draw(st.sampled_from([good("mean"), good("sum"), good("none"), bad("avg"), bad(None), bad("MEAN")]))
    squared = draw(st.sampled_from([good(True), good(False)]))
    return {"x": x, "labels": labels_arg, "y": y, "margin": margin, "reduction": reduction, "squared": squared}


def _pick(case: dict[str, Arg], *names: str) -> dict[str, Arg]:
    return {name: case[name] for name in names}


@FUZZ
@given(case=mining_cases())
def fuzz_pairwise_distance(case: dict[str, Arg]) -> None:
    def expected(v: dict[str, Any]) -> torch.Tensor:
        y = v["x"] if v["y"] is None else v["y"]
        return reference.pairwise_distance(v["x"].double(), y.double(), v["squared"]).to(v["x"].dtype)

    check_contract(bdb_ext.ops.pairwise_distance, _pick(case, "x", "y", "squared"), expected, assert_tensors_close)


@FUZZ
@given(case=mining_cases())
def fuzz_batch_hard_mine(case: dict[str, Arg]) -> None:
    def compare(got: Any, want: Any) -> None:
        # Distances must agree; indices only up to ties, so check what they point at.
        assert_tensors_close(got[:2], want[:2])
        labels, (_, _, idx_p, idx_n) = case["labels"].valid, got
        assert torch.equal(idx_n < 0, want[3] < 0)
        assert torch.equal(labels[idx_p], labels) and not (labels[idx_n[idx_n >= 0]] == labels[idx_n >= 0]).any()

    check_contract(bdb_ext.ops.batch_hard_mine, _pick(case, "x", "labels"),
                   lambda v: reference.batch_hard_mine(v["x"], v["labels"]), compare)


@FUZZ
@given(case=mining_cases())
def fuzz_batch_hard_triplet_loss(case: dict[str, Arg]) -> None:
    check_contract(bdb_ext.ops.batch_hard_triplet_loss, _pick(case, "x", "labels", "margin", "reduction"),
                   lambda v: reference.batch_hard_triplet_loss(**v), assert_tensors_close)


# --- layers and losses (native underneath; in the child process too) ---------------------------------------------

RATIOS = st.one_of(st.floats(0, 1).map(good), st.sampled_from(
    [bad(-0.1), bad(1.5), bad(math.nan), bad(math.inf), bad("0.3"), bad(None), bad(True)]))


@st.composite
def layer_cases(draw: st.DrawFn) -> dict[str, Arg]:
    n, c, h, w = draw(st.integers(0, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    x = good(draw(float_tensors((n, c, h, w))))
    if draw(st.integers(0, 4)) == 0:
        x = draw(bad_tensors((n, c, h, w)))
    return {"h_ratio": draw(RATIOS), "w_ratio": draw(RATIOS), "x": x,
            "mode": draw(st.sampled_from([good("max"), good("avg"), bad("MAX"), bad(None)])),
            "seed": good(draw(st.integers(0, 2**16))),
            "generator": draw(st.sampled_from([good(True), bad("generator"), bad(3)]))}


def _run_layer(layer_class: type, with_mode: bool) -> Callable[..., torch.Tensor]:
    def run(h_ratio: Any, w_ratio: Any, x: Any, mode: Any, seed: int, generator: Any) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed) if generator is True else generator
        kwargs = {"mode": mode} if with_mode else {}
        return layer_class(h_ratio, w_ratio, generator=gen, **kwargs).train()(x)
    return run


def _layer_expected(pool: bool) -> Callable[[dict[str, Any]], torch.Tensor]:
    def expected(v: dict[str, Any]) -> torch.Tensor:
        x = v["x"]
        rect = draw_drop_rect(x.shape[2], x.shape[3], v["h_ratio"], v["w_ratio"],
                              generator=torch.Generator().manual_seed(v["seed"]))
        return reference.drop_pool(x, rect, v["mode"]) if pool else reference.batch_drop_block(x, rect)
    return expected


@FUZZ
@given(case=layer_cases())
def fuzz_batch_drop_block_layer(case: dict[str, Arg]) -> None:
    case["mode"] = good("max")
    check_contract(_run_layer(bdb_ext.BatchDropBlock, False), case, _layer_expected(False), assert_tensors_close)


@FUZZ
@given(case=layer_cases())
def fuzz_batch_drop_pool_layer(case: dict[str, Arg]) -> None:
    check_contract(_run_layer(bdb_ext.BatchDropPool, True), case, _layer_expected(True), assert_tensors_close)


@FUZZ
@given(case=mining_cases())
def fuzz_batch_hard_triplet_loss_module(case: dict[str, Arg]) -> None:
    def run(margin: Any, reduction: Any, x: Any, labels: Any) -> torch.Tensor:
        return bdb_ext.BatchHardTripletLoss(margin, reduction)(x, labels)

    check_contract(run, _pick(case, "margin", "reduction", "x", "labels"),
                   lambda v: reference.batch_hard_triplet_loss(**v), assert_tensors_close)


@dataclass
class _Output:
    global_feature: torch.Tensor
    bdb_feature: torch.Tensor
    global_logits: torch.Tensor
    bdb_logits: torch.Tensor


WEIGHTS = st.one_of(st.floats(0, 3).map(good), st.sampled_from([bad(-1.0), bad(math.nan), bad("1"), bad(None)]))


@FUZZ
@given(margin=st.one_of(st.just(good(None)), st.just(good(0.0)), st.floats(0.01, 2).map(good),
                        st.sampled_from([bad(-0.3), bad(math.nan), bad(math.inf), bad("0.3")])),
       label_smoothing=st.one_of(st.floats(0, 0.99).map(good), st.sampled_from([bad(1.0), bad(-0.1), bad(math.inf)])),
       triplet_global=WEIGHTS, ce_bdb=WEIGHTS, n=st.integers(1, 6), seed=st.integers(0, 2**16),
       labels_kind=st.sampled_from(["good", "int32", "2-D", "list", "length"]))
def fuzz_bdb_loss(margin: Arg, label_smoothing: Arg, triplet_global: Arg, ce_bdb: Arg, n: int, seed: int,
                  labels_kind: str) -> None:
    parts = [_randn((n, d), seed + d, torch.float32) for d in (4, 6)]
    output = _Output(*parts, _randn((n, 5), seed, torch.float32), _randn((n, 5), seed + 1, torch.float32))
    valid_labels = torch.arange(n) % 5
    labels = {"good": good(valid_labels), "int32": variant(valid_labels.int(), valid_labels),
              "2-D": bad(valid_labels[None]), "list": bad(valid_labels.tolist()),
              "length": bad(torch.arange(n + 1) % 5)}[labels_kind]

    def run(margin: Any, label_smoothing: Any, triplet_global: Any, ce_bdb: Any, labels: Any) -> torch.Tensor:
        loss = BDBLoss(margin, label_smoothing, triplet_global=triplet_global, ce_bdb=ce_bdb)
        return loss(output, labels).total

    def expected(v: dict[str, Any]) -> torch.Tensor:
        ce = torch.nn.CrossEntropyLoss(label_smoothing=v["label_smoothing"])
        return (v["triplet_global"] * reference.batch_hard_triplet_loss(parts[0], v["labels"], v["margin"])
                + reference.batch_hard_triplet_loss(parts[1], v["labels"], v["margin"])
                + ce(output.global_logits, v["labels"]) + v["ce_bdb"] * ce(output.bdb_logits, v["labels"]))

    check_contract(run, {"margin": margin, "label_smoothing": label_smoothing, "triplet_global": triplet_global,
                         "ce_bdb": ce_bdb, "labels": labels}, expected, assert_tensors_close)


NATIVE_FUZZERS = ["fuzz_batch_drop_block", "fuzz_drop_pool", "fuzz_pairwise_distance", "fuzz_batch_hard_mine",
                  "fuzz_batch_hard_triplet_loss", "fuzz_batch_drop_block_layer", "fuzz_batch_drop_pool_layer",
                  "fuzz_batch_hard_triplet_loss_module", "fuzz_bdb_loss"]


def run_native_fuzzers(names: list[str]) -> int:
    """Run the named fuzzers one after another (in the child process); report each failure; 1 if any failed."""
    import traceback

    failed = 0
    for name in names:
        try:
            globals()[name]()
        except BaseException:  # noqa: BLE001 - every failure is reported, then the next fuzzer runs
            failed += 1
            print(f"FAILED {name}:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        print(f"done: {name}", file=sys.stderr, flush=True)
    return 1 if failed else 0


def test_native_entry_points_in_a_child_process() -> None:
    # A bad argument that reaches a kernel unchecked can segfault; in a child that is a reported failure. One child
    # for all of them: starting Python with torch costs seconds, more than the fuzzing itself.
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_fuzz_public_api as fuzz; sys.exit(fuzz.run_native_fuzzers({NATIVE_FUZZERS!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    lines = result.stderr.splitlines()
    cases = [line for line in lines if line.startswith("case:")]
    finished = [line.split()[-1] for line in lines if line.startswith("done:")]
    failures = [line for line in lines if line.startswith("FAILED ")]
    died = f"killed by signal {-result.returncode}" if result.returncode < 0 else f"exit status {result.returncode}"
    report = "\n".join(line for line in lines if not line.startswith("case:"))[-8000:]
    assert result.returncode == 0, (f"{died}; failed: {failures}; finished: {finished}; last case: "
                                    f"{cases[-1] if cases else None}\n{report}")
    assert finished == NATIVE_FUZZERS and len(cases) >= len(NATIVE_FUZZERS) * EXAMPLES // 2, (finished, len(cases))


# --- evaluation (pure torch; in-process) ---------------------------------------------------------------------------


def _same_as_canonical(function: Callable[..., Any]) -> Callable[[dict[str, Any]], Any]:
    """The right result of a tolerated variant is the result of the well-formed value; the well-formed results
    themselves are checked against brute-force definitions in tests/evaluation."""
    return lambda v: function(**v)


def _compare_metrics(got: Any, want: Any) -> None:
    if isinstance(want, torch.Tensor):
        assert_tensors_close(got, want)
    elif isinstance(want, dict):
        assert got == want
    else:
        np.testing.assert_allclose(got.cmc, want.cmc)
        assert (got.mAP, got.mINP, got.num_valid_queries) == pytest.approx((want.mAP, want.mINP, want.num_valid_queries))


def matrix_args(rows: int, cols: int, seed: int) -> st.SearchStrategy[Arg]:
    m = _randn((rows, cols), seed, torch.float64).abs()
    poisoned = m.clone()
    if m.numel():
        poisoned[rows // 2, cols // 2] = math.nan
    return st.sampled_from([
        good(m), variant(m.float(), m.float()), variant(m.numpy(), m), variant(m.half(), m.half().float()),
        bad(m.tolist()), bad(m.flatten()), bad(m[None]), bad(m.to(torch.complex64)), bad(m > 0.5), bad(None),
        *([bad(poisoned), bad(poisoned.numpy())] if m.numel() else []),
    ])


def label_args(length: int, high: int, seed: int) -> st.SearchStrategy[Arg]:
    labels = torch.as_tensor(np.random.default_rng(seed).integers(0, high, length))
    return st.sampled_from([
        good(labels), variant(labels.tolist(), labels), variant(labels.numpy(), labels), variant(labels.int(), labels),
        variant(labels.double(), labels), bad(labels.double() + 0.5), bad(labels[:-1] if length else labels[None]),
        bad(labels[None]), bad("ids"), bad(None), bad([str(v) for v in labels.tolist()] or [[1, 2], [3]]),
    ])


POSITIVE_INTS = st.one_of(st.integers(1, 60).map(good), st.sampled_from(
    [bad(0), bad(-1), bad(2.5), bad(True), bad("5"), bad(None), variant(np.int64(3), 3)]))


@FUZZ
@given(data=st.data(), num_q=st.integers(1, 5), num_g=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_rank_metrics(data: st.DataObject, num_q: int, num_g: int, seed: int) -> None:
    args = {"distmat": data.draw(matrix_args(num_q, num_g, seed)),
            "query_pids": data.draw(label_args(num_q, 3, seed)), "gallery_pids": data.draw(label_args(num_g, 3, seed + 1)),
            "query_camids": data.draw(label_args(num_q, 2, seed + 2)),
            "gallery_camids": data.draw(label_args(num_g, 2, seed + 3)),
            "max_rank": data.draw(POSITIVE_INTS), "ap_cutoff": data.draw(st.one_of(st.just(good(None)), POSITIVE_INTS)),
            "chunk_size": data.draw(POSITIVE_INTS)}
    check_contract(rank_metrics, args, _same_as_canonical(rank_metrics), _compare_metrics,
                   data_refusal="no query has a valid match")


@FUZZ
@given(data=st.data(), num_q=st.integers(1, 5), num_g=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_cuhk03_rank_metrics(data: st.DataObject, num_q: int, num_g: int, seed: int) -> None:
    args = {"distmat": data.draw(matrix_args(num_q, num_g, seed)),
            "query_pids": good(torch.zeros(num_q, dtype=torch.long)), "gallery_pids": good(torch.zeros(num_g, dtype=torch.long)),
            "query_camids": good(torch.zeros(num_q, dtype=torch.long)),
            "gallery_camids": good(torch.ones(num_g, dtype=torch.long)),
            "num_repeats": data.draw(POSITIVE_INTS),
            "seed": data.draw(st.one_of(st.integers(0, 2**40).map(good), st.sampled_from([bad(-1), bad(1.5), bad("0")])))}
    check_contract(cuhk03_rank_metrics, args, _same_as_canonical(cuhk03_rank_metrics), _compare_metrics)


METRIC_NAMES = st.sampled_from([good("euclidean"), good("sqeuclidean"), good("cosine"), bad("l2"), bad(None)])


@FUZZ
@given(data=st.data(), num_q=st.integers(1, 5), num_g=st.integers(1, 8), dim=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_pairwise_distances_and_recall(data: st.DataObject, num_q: int, num_g: int, dim: int, seed: int) -> None:
    query, gallery = data.draw(matrix_args(num_q, dim, seed)), data.draw(matrix_args(num_g, dim, seed + 1))
    metric, chunk_size = data.draw(METRIC_NAMES), data.draw(POSITIVE_INTS)

    def cdist(v: dict[str, Any]) -> torch.Tensor:
        q, g = v["query"], v["gallery"]
        dtype = torch.promote_types(q.dtype, g.dtype)
        if v["metric"] == "cosine":
            return 1 - torch.nn.functional.normalize(q.to(dtype), dim=1) @ torch.nn.functional.normalize(
                g.to(dtype), dim=1).T
        d = torch.cdist(q.double(), g.double()).to(dtype)
        return d.square() if v["metric"] == "sqeuclidean" else d

    check_contract(pairwise_distances, {"query": query, "gallery": gallery, "metric": metric,
                                        "chunk_size": chunk_size}, cdist, assert_tensors_close)
    ks = data.draw(st.one_of(st.lists(st.integers(1, num_g), min_size=1, max_size=3).map(good),
                             st.sampled_from([bad([]), bad([0]), bad([num_g + 1]), bad([1.5]), bad(3), bad("1")])))
    labels = data.draw(label_args(num_g, 3, seed))
    check_contract(recall_at_k_query_gallery,
                   {"query": query, "gallery": gallery, "query_labels": data.draw(label_args(num_q, 3, seed + 2)),
                    "gallery_labels": labels, "ks": ks, "metric": metric, "chunk_size": chunk_size},
                   _same_as_canonical(recall_at_k_query_gallery), _compare_metrics)
    if num_g > 1:
        ks = data.draw(st.one_of(st.lists(st.integers(1, num_g - 1), min_size=1, max_size=3).map(good),
                                 st.sampled_from([bad([num_g]), bad([-1]), bad(None)])))
        check_contract(recall_at_k, {"embeddings": gallery, "labels": labels, "ks": ks, "metric": metric,
                                     "chunk_size": chunk_size}, _same_as_canonical(recall_at_k), _compare_metrics)


@FUZZ
@given(data=st.data(), num_q=st.integers(1, 4), num_g=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_re_ranking(data: st.DataObject, num_q: int, num_g: int, seed: int) -> None:
    query, gallery = data.draw(matrix_args(num_q, 3, seed)), data.draw(matrix_args(num_g, 3, seed + 1))
    args = {"query": query, "gallery": gallery, "k1": data.draw(POSITIVE_INTS), "k2": data.draw(POSITIVE_INTS),
            "lambda_value": data.draw(st.one_of(st.floats(0, 1).map(good), st.sampled_from(
                [bad(-0.1), bad(1.5), bad(math.nan), bad("0.3"), bad(None)]))),
            "chunk_size": data.draw(POSITIVE_INTS), "pair_budget": data.draw(POSITIVE_INTS),
            "device": data.draw(st.sampled_from([good(None), good("cpu"), bad("gpu"), bad(7)]))}

    def from_matrices(v: dict[str, Any]) -> torch.Tensor:
        # The features form must equal the matrix form on the Euclidean distances of the same features.
        q, g = torch.as_tensor(v["query"]).double(), torch.as_tensor(v["gallery"]).double()
        return re_ranking(torch.cdist(q, g), torch.cdist(q, q), torch.cdist(g, g), v["k1"], v["k2"],
                          v["lambda_value"])

    def close(got: torch.Tensor, want: torch.Tensor) -> None:
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)

    check_contract(re_ranking_features, args, from_matrices, close)


# --- data parsing (pure Python; in-process) ----------------------------------------------------------------------

MARKET_NAMES = st.one_of(
    st.builds(lambda pid, cam, rest: f"{pid}_c{cam}{rest}.jpg", st.integers(-3, 99999), st.integers(0, 30),
              st.sampled_from(["s1_000451_03", "_f0046182", "_3", "", "s"])),
    st.text(alphabet="0123456789_c-s.jpgx", max_size=20), st.text(max_size=12))


@FUZZ
@given(filename=MARKET_NAMES, num_cameras=st.one_of(
    st.just(good(None)), st.integers(1, 20).map(good),
    st.sampled_from([bad(0), bad(-2), bad("6"), bad(2.5), bad(True)])))
def test_parse_market_name(filename: str, num_cameras: Arg) -> None:
    match = re.match(r"(-?\d+)_c(\d+)", filename)
    pid, cam = (int(match[1]), int(match[2])) if match else (None, None)
    limit = num_cameras.valid if num_cameras.valid is not MUST_REFUSE else None
    well_formed = match is not None and pid >= -1 and cam >= 1 and (limit is None or cam <= limit)
    file_arg = good(filename) if well_formed else bad(filename)
    # The errors about a name quote the name itself (the folder holds thousands): that is what must be named.
    check_contract(parse_market_name, {"filename": file_arg, "num_cameras": num_cameras},
                   lambda v: (pid, cam - 1), lambda got, want: _assert_equal(got, want),
                   {"filename": [repr(filename), "image name"]})


def _assert_equal(got: Any, want: Any) -> None:
    assert got == want


@FUZZ
@given(labels=st.one_of(st.lists(st.integers(0, 6), min_size=1, max_size=40).map(good),
                        st.sampled_from([bad([]), bad([[0, 1]]), bad([0.5, 1.5]), bad("abc"), bad(None)])),
       num_instances=POSITIVE_INTS, batch_size=POSITIVE_INTS,
       seed=st.one_of(st.integers(0, 2**40).map(good), st.sampled_from([bad(-1), bad(True), bad("0")])),
       world_size=st.one_of(st.just(good(1)), st.sampled_from([bad(0), bad(True)])))
def test_random_identity_sampler(labels: Arg, num_instances: Arg, batch_size: Arg, seed: Arg, world_size: Arg) -> None:
    def build_and_draw(**kwargs: Any) -> list[int]:
        return list(RandomIdentitySampler(**kwargs))

    def check(got: list[int], want: list[int]) -> None:
        # Same seed and epoch: the same indices; every batch holds K images of each of its P identities.
        assert got == want
        k = num_instances.valid
        for start in range(0, len(got), batch_size.valid):
            ids = [labels.valid[i] for i in got[start:start + batch_size.valid]]
            assert all(ids.count(pid) % k == 0 for pid in set(ids))

    args = {"labels": labels, "num_instances": num_instances, "batch_size": batch_size, "seed": seed,
            "world_size": world_size}
    check_contract(build_and_draw, args, lambda v: list(RandomIdentitySampler(**v)), check,
                   data_refusal=r"multiple of num_instances|a batch needs|split evenly")


@FUZZ
@given(name=st.one_of(st.sampled_from(["market1501", "Market1501", "msmt17", "cuhk03-labeled", "inshop"]).map(good),
                      st.text(max_size=10).map(bad), st.sampled_from([bad(None), bad(3)])),
       root_kind=st.sampled_from(["missing", "file", "bad type"]))
def test_build_dataset_errors(tmp_path_factory: pytest.TempPathFactory, name: Arg, root_kind: str) -> None:
    folder = tmp_path_factory.mktemp("root")
    (folder / "a_file").write_text("")
    root = {"missing": folder / "missing", "file": folder / "a_file", "bad type": 3.5}[root_kind]
    if isinstance(name.value, str) and name.value.lower() in ("market1501", "msmt17", "cuhk03-labeled", "inshop"):
        name = good(name.value)
    try:
        check_contract(build_dataset, {"name": name, "root": bad(root)}, lambda v: None, _assert_equal,
                       {"root": ["root folder", str(root)]})
    except FileNotFoundError as error:
        # A root that does not exist is the one refusal that is not a ValueError/TypeError, by its nature.
        assert not name.must_refuse and root_kind != "bad type" and str(root) in str(error)


# --- what the fuzzers found in the op layer (bdb_ext/ops, csrc), pinned as regression tests ----------------------
# Each returned a wrong value (never crashed) before its fix; run in-process.

DROP_CALLS = {"batch_drop_block": bdb_ext.ops.batch_drop_block,
              "drop_pool max": lambda x, rect: bdb_ext.ops.drop_pool(x, rect, "max"),
              "drop_pool avg": lambda x, rect: bdb_ext.ops.drop_pool(x, rect, "avg")}


@pytest.mark.parametrize("rect", [[2**62, 0, 2**62, 4], [1, 0, 2**63 - 1, 4], [0, 2**62, 4, 2**62],
                                  [0, 1, 6, 2**63 - 1], [2**63 - 1, 0, 1, 4]])
@pytest.mark.parametrize("call", DROP_CALLS)
def test_rect_beyond_int64_arithmetic_is_refused(call: str, rect: list[int]) -> None:
    with pytest.raises(REFUSALS, match="rect|top|left|height|width"):
        DROP_CALLS[call](torch.ones(2, 3, 6, 4), rect)


META_CALLS = {
    "batch_drop_block rect": lambda m: bdb_ext.ops.batch_drop_block(torch.ones(2, 3, 6, 4), m(torch.tensor([1, 0, 2, 4]))),
    "drop_pool rect": lambda m: bdb_ext.ops.drop_pool(torch.ones(2, 3, 6, 4), m(torch.tensor([1, 0, 2, 4]))),
    "pairwise_distance y": lambda m: bdb_ext.ops.pairwise_distance(torch.randn(3, 2), m(torch.randn(3, 2))),
    "batch_hard_mine labels": lambda m: bdb_ext.ops.batch_hard_mine(torch.randn(4, 2), m(torch.arange(4))),
    "batch_hard_triplet_loss labels": lambda m: bdb_ext.ops.batch_hard_triplet_loss(torch.randn(4, 2),
                                                                                   m(torch.arange(4))),
}


@pytest.mark.parametrize("call", META_CALLS)
def test_a_meta_tensor_among_cpu_arguments_is_refused(call: str) -> None:
    with pytest.raises(REFUSALS, match="device|meta"):
        META_CALLS[call](lambda t: t.to("meta"))


@pytest.mark.parametrize("call", ["pairwise_distance", "batch_hard_mine", "batch_hard_triplet_loss"])
def test_well_formed_mining_arguments_under_cpu_autocast(call: str) -> None:
    x, labels = torch.randn(8, 16), torch.arange(8) // 2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = getattr(bdb_ext.ops, call)(*((x,) if call == "pairwise_distance" else (x, labels)))
    want = getattr(reference, call)(*((x, x) if call == "pairwise_distance" else (x, labels)))
    assert_tensors_close(tuple(got) if isinstance(got, tuple) else got.float(), tuple(want) if isinstance(want, tuple)
                         else want)


@pytest.mark.parametrize("squared", ["no", "false", None, 2, [False]])
def test_pairwise_distance_refuses_a_squared_that_is_not_a_bool(squared: object) -> None:
    with pytest.raises(REFUSALS, match="squared"):
        bdb_ext.ops.pairwise_distance(torch.randn(3, 2), squared=squared)
