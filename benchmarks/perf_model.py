"""The performance model of the bdb_ext CUDA kernels: one place for the numbers that
``docs/performance.md`` explains, ``tests/emulation/test_launch_shapes.py`` asserts on the emulator's
launch log, ``scripts/audit_cuda_binary.py`` checks against ``cuobjdump``, and the GPU benchmark prints
beside its measurements.

Two parts:

* ``predict(op, pass_, shape, dtype, gpu)``: bytes moved, FLOPs, predicted time and the HBM floor of
  one fused op pass at a given shape (a roofline with a per-kernel launch floor).
* ``KERNELS`` and ``check_parallelism``: for every ``__global__`` kernel, the occupancy its launch
  shape assumes (resident blocks per SM, hence a register ceiling) and whether a given launch offers
  enough parallelism to fill a 132-SM GPU: bytes in flight by Little's law for memory-bound kernels,
  resident warps for FMA-bound ones. "Latency" kernels (a fixed, small set of independent work items:
  the mining finalizers' 2N single-warp items, the backward's one-block pair grouping) are exempt from
  filling the GPU and are held to a predicted-time budget instead (``latency_budget_us``).

Nothing here was measured on a GPU: the constants are datasheet figures and stated assumptions.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable

import torch

__all__ = [
    "GPUS",
    "KERNELS",
    "L2_LATENCY_NS",
    "LAUNCH_FLOOR_US",
    "MEMORY_LATENCY_NS",
    "Gpu",
    "KernelSpec",
    "Launch",
    "ParallelismVerdict",
    "check_parallelism",
    "latency_budget_us",
    "launch_us",
    "parse_kernel",
    "predict",
    "register_ceiling",
    "resident_blocks_per_sm",
]


@dataclasses.dataclass(frozen=True)
class Gpu:
    """Datasheet figures of one GPU (SXM parts)."""

    name: str
    sms: int
    hbm_bytes_per_s: float
    fp32_flops: float  # FMA peak, an FMA counted as 2 FLOPs
    regs_per_sm: int = 65536
    max_threads_per_sm: int = 2048
    max_blocks_per_sm: int = 32
    shared_bytes_per_sm: int = 228 * 1024
    shared_reserved_per_block: int = 1024


GPUS: dict[str, Gpu] = {
    "H100": Gpu("H100", sms=132, hbm_bytes_per_s=3.35e12, fp32_flops=67e12),
    "H200": Gpu("H200", sms=132, hbm_bytes_per_s=4.8e12, fp32_flops=67e12),
}

# The GPU-side cost of a kernel that does almost nothing (launch, first wave, drain).
LAUNCH_FLOOR_US = 5.0
# Loaded HBM latency assumed by Little's law: bytes in flight needed = bandwidth x latency
# (H200: 4.8 TB/s x 500 ns = 2.4 MB, about 18 KB per SM).
MEMORY_LATENCY_NS = 500.0
# Fractions of peak that a well-formed kernel reaches: streaming copies reach about 90% of HBM peak
# (kernels.md: about 3.0 of 3.35 TB/s on an H100); FP32 tile kernels about 60% of the FMA peak.
HBM_EFFICIENCY = 0.9
FMA_EFFICIENCY = 0.6
# Warps per SM an FMA-bound kernel needs to hide FMA and shared-memory latency (2 per scheduler).
MIN_COMPUTE_WARPS_PER_SM = 8
# Loaded L2 hit latency (assumed): the mining finalizers re-read data that the kernel before them has
# just written or read (partial sums, bound records, the embeddings: at most 34 MB, inside the 50 MB L2).
L2_LATENCY_NS = 200.0
# SM clock (H100/H200 SXM boost) and warp schedulers per SM: the issue time of the grouping kernel.
SM_CLOCK_HZ = 1.98e9
SCHEDULERS_PER_SM = 4
# Latency kernels may not fill the GPU, so they must be cheap: a launch of one is predicted at no more
# than max(LATENCY_BUDGET_FLOORS launch floors, LATENCY_PASS_FRACTION of its pass's predicted time).
LATENCY_BUDGET_FLOORS = 2.0
LATENCY_PASS_FRACTION = 0.1
# Batch-hard mining switches to the GEMM form (|a|^2 + |b|^2 - 2ab) from this N on (kernels.md).
GEMM_FORM_MIN_N = 2048
# BDB's dropped block at the paper shape: round(0.33 * 24) = 8 of 24 rows, full width.
PAPER_DROP_ROW_FRACTION = 8 / 24

_OPS = ("copy", "drop", "drop_pool_max", "drop_pool_avg", "pairwise_distance", "mining_loss")
_PASSES = ("fwd", "bwd", "fwd+bwd")


def _element_bytes(dtype: torch.dtype) -> int:
    if dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise TypeError(f"dtype must be float32, float16, bfloat16 or float64, got {dtype}")
    return torch.empty((), dtype=dtype).element_size()


def _map_shape(shape: dict) -> tuple[int, int, int, int]:
    try:
        return int(shape["N"]), int(shape["C"]), int(shape["H"]), int(shape["W"])
    except KeyError as e:
        raise ValueError(f"shape must have keys N, C, H, W for a feature-map op, got {shape}") from e


def _embedding_shape(shape: dict) -> tuple[int, int]:
    try:
        return int(shape["N"]), int(shape["D"])
    except KeyError as e:
        raise ValueError(f"shape must have keys N, D for a mining op, got {shape}") from e


@dataclasses.dataclass(frozen=True)
class _Kernel:
    """One launch of a pass: HBM bytes, arithmetic, the FP32 issue slots the arithmetic takes, and
    for a latency kernel the time its few work items take whatever the bandwidth."""

    bytes: float
    flops: float = 0.0
    fp32_slots: float = 0.0  # an FMA or a subtract each take one slot
    latency_us: float = 0.0


# ----------------------------------------------------------------------------------------------
# The metric-learning kernels (csrc/cuda/mining_*.cuh)
# ----------------------------------------------------------------------------------------------

# Launches of the loss that bdb_ext.ops.batch_hard_triplet_loss computes on the mined pairs: one fused
# kernel each way (triplet_loss_kernels.cuh), plus, in the backward, autograd's ones_like of the scalar
# loss (counted by benchmarks/count_launches.py). The reference eager code
# (reference.triplet_loss_reference_code) runs 19 + 30 ATen launches (same count, TorchDispatchMode on the
# CPU, torch 2.14.1).
LOSS_LAUNCHES = {"fwd": 1, "bwd": 2}
REFERENCE_EAGER_LAUNCHES = {"fwd": 19, "bwd": 30}

# Tile sizes and thresholds of csrc/cuda/mining_launch.cuh (the launch audit checks that the kernels
# the emulator records are the ones mining_path() names).
_TILE, _TILE_K, _GEMM_TILE, _TARGET_SMS = 32, 16, 128, 132
WARP = 32
# Loads a lane keeps in flight in the finalizers' loops (unrolled by nvcc: cuobjdump -sass of the
# sm_90 build shows 4 partial-sum loads per step in the split-K finalize, 4 or more in the re-measure).
_FINALIZE_LOADS_IN_FLIGHT = 4
# SASS instructions per compared key in the grouping kernel's rank loop (LDS.128 feeds 4 x
# ISETP + VIADD + predicated MOV).
_GROUP_RANK_INSTRUCTIONS = 3.25


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def splitk_ksplits(N: int, M: int, D: int) -> int:
    """The k-splits of the direct form for N x M rows (1: no split-K), as mining_splitk_launch."""
    pairs = _ceil_div(N, _TILE) * _ceil_div(M, _TILE)
    chunks = _ceil_div(D, _TILE_K)
    if pairs < 1 or pairs >= _TARGET_SMS or chunks < 2:
        return 1
    ks = min(_ceil_div(2 * _TARGET_SMS, pairs), chunks)
    return _ceil_div(chunks, _ceil_div(chunks, ks))


def _select_splits(N: int) -> int:
    """Candidate runs of the direct select (mining_select_launch): about 512 blocks, at most 32 runs."""
    tiles = _ceil_div(N, _TILE)
    splits = max(1, min(_ceil_div(512, max(tiles, 1)), tiles, 32))
    return _ceil_div(tiles, _ceil_div(tiles, splits))


def mining_path(N: int, D: int, dtype: torch.dtype = torch.float32) -> dict:
    """The forward path batch_hard_mine takes on CUDA and its launch parameters, as
    csrc/cuda/mining_launch.cuh computes them: {"path": "splitk" | "select" | "gemm", "ksplits",
    "splits", "tiles" (GEMM candidate tiles), "pairs_per_chunk" (backward hub chunk size),
    "group_in_block" (the backward's grouping block orders the pairs itself, without the rank and
    scatter kernels)}."""
    out: dict = {"ksplits": 1, "splits": 1, "tiles": _ceil_div(N, _GEMM_TILE), "group_in_block": 2 * N <= 1024}
    if N >= GEMM_FORM_MIN_N and dtype != torch.float64:
        out["path"] = "gemm"
    elif splitk_ksplits(N, N, D) > 1:
        out.update(path="splitk", ksplits=splitk_ksplits(N, N, D))
    else:
        out.update(path="select", splits=_select_splits(N))
    chunk = 16
    while chunk < 256 and chunk * chunk < 2 * N:
        chunk *= 2
    out["pairs_per_chunk"] = chunk
    return out


def _remeasure_round_trips(D: int) -> int:
    """Dependent L2 round trips of a warp re-measuring one pair over D elements (plus writing it)."""
    return _ceil_div(D, WARP * _FINALIZE_LOADS_IN_FLIGHT) + 1



def _finalize_item_us(family: str, N: int, D: int) -> float:
    """Time of one (anchor, class) item of a finalize kernel: a single warp walking a chain of
    dependent L2 round trips (the data was just written or read by the kernel before it)."""
    path = mining_path(N, D)
    if family == "mining_splitk_finalize_kernel":
        # labels[i]; per candidate of the lane: its label, then its k-split sums 4 at a time.
        trips = 1 + _ceil_div(N, WARP) * (1 + _ceil_div(path["ksplits"], _FINALIZE_LOADS_IN_FLIGHT))
    elif family == "mining_finalize_kernel":
        trips = 1 + _ceil_div(_select_splits(N), WARP)  # the runs' partial winners
    elif family == "mining_gemm_finalize_kernel":
        # labels[i], the global bound (lanes read the records in parallel), then the warp walks the
        # records in tile order (warp-uniform: one round trip each). Candidates re-measured because the
        # bound cannot rule them out are data-dependent and not counted (random embeddings: a few).
        trips = 1 + _ceil_div(path["tiles"], WARP) + path["tiles"]
    else:
        raise ValueError(f"not a finalize kernel: {family}")
    return (trips + _remeasure_round_trips(D)) * L2_LATENCY_NS * 1e-3


def _rank_issue_us(warp_iterations: float) -> float:
    """Issue time on one SM of a rank loop's compares (all of an SM's warps share its schedulers)."""
    return warp_iterations * _GROUP_RANK_INSTRUCTIONS / SCHEDULERS_PER_SM / SM_CLOCK_HZ * 1e6


def _group_pairs_us(N: int) -> float:
    """Time of mining_group_pairs_kernel (one block of 1024 threads over the 2N pairs): its dependent
    global round trips (read the targets and count, scan, write the offsets) and, when it orders the
    pairs itself (2N <= 1024: one round), the issue time of its stable-rank loop (thread t compares
    its row with the t earlier ones; a warp runs until its last lane is done) and two more trips."""
    pairs = 2 * N
    if pairs > 1024:
        return 3 * MEMORY_LATENCY_NS * 1e-3
    warps = _ceil_div(pairs, WARP)
    issue = _rank_issue_us(sum(WARP * w + WARP - 1 for w in range(warps)))
    return issue + 4 * MEMORY_LATENCY_NS * 1e-3


def _rank_pairs_block_us() -> float:
    """One block of mining_rank_pairs_kernel: 256 pairs against a slice of 1024 earlier pairs (8 warps
    of up to 1024 compares), plus reading the targets and the atomic add."""
    return _rank_issue_us(8 * 1024) + 2 * MEMORY_LATENCY_NS * 1e-3


def _pairwise_splitk_finalize_us(N: int, M: int, D: int) -> float:
    """One thread of pairwise_splitk_finalize_kernel: its k-split sums, 4 loads at a time, from L2."""
    return (_ceil_div(splitk_ksplits(N, M, D), _FINALIZE_LOADS_IN_FLIGHT) + 1) * L2_LATENCY_NS * 1e-3


def _waves(blocks: int, blocks_per_sm: int, gpu: str) -> int:
    return _ceil_div(blocks, GPUS[gpu].sms * blocks_per_sm)


def _mining_kernels(op: str, N: int, D: int, e: int) -> tuple[list[_Kernel], list[_Kernel]]:
    """The kernels of one fwd and one bwd pass of pairwise_distance or batch_hard_mine + the loss."""
    pairs = N * N * D
    direct = dict(flops=3.0 * pairs, fp32_slots=2.0 * pairs)  # sum((a - b)^2): FSUB + FFMA
    rows = N * D * e
    if op == "pairwise_distance":
        # The direct form at every N: reads X once (tiles reuse it from L2), writes N x N; at small N
        # split-K, whose finalize adds the k-split sums; backward is two fp32 GEMMs.
        ks = splitk_ksplits(N, N, D)
        if ks > 1:
            fwd = [_Kernel(rows + ks * N * N * 4, **direct),
                   _Kernel(ks * N * N * 4 + N * N * e, latency_us=_pairwise_splitk_finalize_us(N, N, D))]
        else:
            fwd = [_Kernel(rows + N * N * e, **direct)]
        bwd = [_Kernel(N * N * e + 2 * rows, flops=4.0 * pairs, fp32_slots=2.0 * pairs)]
        return fwd, bwd
    path = mining_path(N, D, torch.float64 if e == 8 else torch.float32)
    vectors = 4 * N * 8  # d_ap, d_an, idx_p, idx_n
    if path["path"] == "gemm":
        records = path["tiles"] * N * 48  # MiningGemmRecord<float>: 6 floats + 2 int64
        select = [
            _Kernel(rows + 4 * N),  # norms
            _Kernel(rows + records, flops=2.0 * pairs, fp32_slots=float(pairs)),  # |a|^2 + |b|^2 - 2ab
        ]
        fin_bytes = records + vectors
    else:
        partial = path["ksplits"] * N * N * 4 if path["path"] == "splitk" else path["splits"] * N * 24
        select = [_Kernel(rows + partial, **direct)]
        fin_bytes = partial + vectors
    family = {"splitk": "mining_splitk_finalize_kernel", "select": "mining_finalize_kernel",
              "gemm": "mining_gemm_finalize_kernel"}[path["path"]]
    # 2N single-warp items, up to 32 one-warp blocks resident per SM: the waves of H200/H100 agree.
    finalize = _Kernel(fin_bytes, latency_us=_waves(2 * N, 32, "H200") * _finalize_item_us(family, N, D))
    loss_fwd = [_Kernel(N * (2 * e + 8))]  # d_ap, d_an, idx_n in; the scalar out
    loss_bwd = [_Kernel(4.0), _Kernel(N * (4 * e + 8))]  # ones_like; then the two gradients out as well
    group = [_Kernel(2 * N * 8 + 5 * N * 4, latency_us=_group_pairs_us(N))]
    if not path["group_in_block"]:
        rank_blocks = _ceil_div(2 * N, 256) * _ceil_div(2 * N, 1024)
        group += [
            _Kernel(2 * N * 8, latency_us=_waves(rank_blocks, 1, "H200") * _rank_pairs_block_us()),
            _Kernel(2 * N * 16, latency_us=3 * MEMORY_LATENCY_NS * 1e-3),  # scatter
        ]
    # Without hubs the chunk kernel's blocks exit at once; the row kernel reads x_j, x_p(j), x_n(j)
    # and the anchors that chose j (L2 hits after the first touch) and writes dx once.
    chunks = _Kernel(0.0)
    backward_rows = _Kernel(2 * rows + vectors, flops=8.0 * N * D, fp32_slots=4.0 * N * D)
    return select + [finalize] + loss_fwd, loss_bwd + group + [chunks, backward_rows]


def _kernels(op: str, pass_: str, shape: dict, dtype: torch.dtype) -> list[_Kernel]:
    e = _element_bytes(dtype)
    if op in ("copy", "drop", "drop_pool_max", "drop_pool_avg"):
        N, C, H, W = _map_shape(shape)
        size = N * C * H * W * e  # S
        kept = size * (1.0 - float(shape.get("drop_rows", PAPER_DROP_ROW_FRACTION)))
        pooled = N * C * e
        argmax = N * C * 8 if op == "drop_pool_max" else 0
        fwd_bwd = {
            "copy": ([_Kernel(2 * size)], [_Kernel(2 * size)]),
            # Dropped vectors are never read; y (or dx) is written in full.
            "drop": ([_Kernel(kept + size)], [_Kernel(kept + size)]),
            # Forward reads the kept rows once; backward writes the dense dx once.
            "drop_pool_max": ([_Kernel(kept + pooled + argmax)], [_Kernel(pooled + argmax + size)]),
            "drop_pool_avg": ([_Kernel(kept + pooled)], [_Kernel(pooled + size)]),
        }[op]
    else:
        N, D = _embedding_shape(shape)
        fwd_bwd = _mining_kernels(op, N, D, e)
    fwd, bwd = fwd_bwd
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + bwd}[pass_]


def predict(op: str, pass_: str, shape: dict, dtype: torch.dtype, gpu: str = "H200") -> dict:
    """Predicted cost of one fused pass.

    Args:
        op: one of "copy", "drop", "drop_pool_max", "drop_pool_avg", "pairwise_distance", "mining_loss"
            (batch_hard_mine and its backward, plus the soft-margin loss on the mined pairs: the fused
            loss kernels, LOSS_LAUNCHES per pass).
        pass_: "fwd", "bwd" or "fwd+bwd".
        shape: {"N", "C", "H", "W"} for the feature-map ops (optional "drop_rows": the dropped
            fraction of rows, default 8/24), {"N", "D"} for the mining ops.
        dtype: float32, float16, bfloat16 or float64 (fp16/bf16 accumulate in fp32).
        gpu: "H100" or "H200".

    Returns:
        {"bytes": HBM bytes moved, "flops": FLOPs (an FMA is 2), "us": predicted time in
        microseconds (each kernel: the larger of its HBM time at HBM_EFFICIENCY, its FP32 time at
        FMA_EFFICIENCY, LAUNCH_FLOOR_US and, for a latency kernel, the time of its work items),
        "floor_us": bytes / HBM peak}.
    """
    if op not in _OPS:
        raise ValueError(f"op must be one of {_OPS}, got {op!r}")
    if pass_ not in _PASSES:
        raise ValueError(f"pass_ must be one of {_PASSES}, got {pass_!r}")
    if gpu not in GPUS:
        raise ValueError(f"gpu must be one of {tuple(GPUS)}, got {gpu!r}")
    g = GPUS[gpu]
    kernels = _kernels(op, pass_, shape, dtype)
    slots_per_s = g.fp32_flops / 2.0  # one FMA (2 FLOPs) per slot
    us = 0.0
    for k in kernels:
        memory_us = k.bytes / (g.hbm_bytes_per_s * HBM_EFFICIENCY) * 1e6
        compute_us = k.fp32_slots / (slots_per_s * FMA_EFFICIENCY) * 1e6
        us += max(memory_us, compute_us, LAUNCH_FLOOR_US, k.latency_us)
    total_bytes = float(sum(k.bytes for k in kernels))
    return {
        "bytes": total_bytes,
        "flops": float(sum(k.flops for k in kernels)),
        "us": us,
        "floor_us": total_bytes / g.hbm_bytes_per_s * 1e6,
    }


# ----------------------------------------------------------------------------------------------
# Occupancy and parallelism of each kernel
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Launch:
    """One recorded launch: the demangled kernel and its grid and block (x, y, z)."""

    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]

    @property
    def blocks(self) -> int:
        return self.grid[0] * self.grid[1] * self.grid[2]

    @property
    def threads_per_block(self) -> int:
        return self.block[0] * self.block[1] * self.block[2]


_SCALAR_BYTES = {"float": 4, "double": 8, "c10::Half": 2, "c10::BFloat16": 2}


def parse_kernel(demangled: str) -> tuple[str, list[str]]:
    """("family", [template arguments]) of a demangled bdb kernel name, e.g.
    "void bdb::drop_block_kernel<c10::Half, 8>(...)" -> ("drop_block_kernel", ["c10::Half", "8"])."""
    m = re.search(r"bdb::(\w+)<([^()]*)>\(", demangled) or re.search(r"bdb::(\w+)\(", demangled)
    if m is None:
        raise ValueError(f"not a bdb kernel name: {demangled!r}")
    args = [a.strip() for a in m.group(2).split(",")] if m.lastindex == 2 else []
    return m.group(1), args


def _scalar_vec_bytes(args: list[str]) -> int:
    """Bytes of one VecOf<scalar_t, VEC> load: the first template argument is the scalar type, the
    second VEC (1 when absent)."""
    vec = int(args[1]) if len(args) > 1 and args[1].lstrip("-").isdigit() else 1
    return _SCALAR_BYTES[args[0]] * vec


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """What the model assumes of one kernel family (all its template instantiations).

    bound: "memory" (judged by bytes in flight), "compute" (judged by resident warps) or "latency"
        (a fixed, small set of independent work items; judged by predicted time against
        latency_budget_us, see check_parallelism).
    threads: the largest block its launch config uses.
    blocks_per_sm: the resident blocks per SM the launch shape assumes; the binary audit requires
        registers <= register_ceiling(...) and shared memory <= max_shared_bytes so that they fit.
    slow_blocks_per_sm: the same for the instantiations that are not the fast path (float64, or the
        scalar VEC = 1 fallback for rows that are not 16-byte aligned), when they need more registers.
    in_flight_per_thread: for memory-bound kernels, HBM bytes one thread has outstanding per loop
        step (its loads and stores), from the template arguments and the problem shape.
    total_bytes: HBM bytes of the whole launch (a launch that moves less than the Little's-law
        target needs only to have all of it in flight at once).
    item_us: for latency kernels, the predicted time of one block (one work item) at the shape.
    """

    bound: str
    threads: int
    blocks_per_sm: int
    max_shared_bytes: int = 0
    in_flight_per_thread: Callable[[list[str], dict], float] | None = None
    total_bytes: Callable[[list[str], dict], float] | None = None
    slow_blocks_per_sm: int | None = None
    item_us: Callable[[list[str], dict], float] | None = None

    def blocks_for(self, args: list[str] | None = None) -> int:
        """Resident blocks per SM assumed for the instantiation with template arguments `args`."""
        if self.slow_blocks_per_sm is not None and args and _is_slow_instantiation(args):
            return self.slow_blocks_per_sm
        return self.blocks_per_sm


def _is_slow_instantiation(args: list[str]) -> bool:
    """float64, or a vector width of 1 where the kernel has a VEC template argument."""
    return args[0] == "double" or (len(args) > 1 and args[1] == "1")


def _map_bytes(args: list[str], shape: dict) -> float:
    N, C, H, W = _map_shape(shape)
    return float(N * C * H * W * _SCALAR_BYTES[args[0]])


def _kept_fraction(shape: dict) -> float:
    return 1.0 - float(shape.get("drop_rows", PAPER_DROP_ROW_FRACTION))


def _plane_lane_use(args: list[str], shape: dict) -> float:
    """Busy fraction of the lanes of drop_pool_planes_kernel: `group` lanes (a power of two <= 32)
    share a plane of H*W/VEC vectors, so some lanes idle in the last step."""
    _, _, H, W = _map_shape(shape)
    vectors = max(1, H * W // (int(args[1]) if len(args) > 1 else 1))
    group = 1
    while group < 32 and group < vectors:
        group *= 2
    return vectors / (group * math.ceil(vectors / group))


def _embedding_bytes(args: list[str], shape: dict) -> float:
    N, D = _embedding_shape(shape)
    return float(N * D * _SCALAR_BYTES[args[0]])


def _triplet_anchor_bytes(args: list[str]) -> float:
    """Bytes the triplet loss kernels read per anchor: d_ap and d_an (the scalar type) and idx_n (int64)."""
    return 2.0 * _SCALAR_BYTES[args[0]] + 8.0


KERNELS: dict[str, KernelSpec] = {
    # y = x outside the rectangle: one VEC load and one VEC store per step.
    "drop_block_kernel": KernelSpec(
        "memory", 256, 6,
        in_flight_per_thread=lambda a, s: 2.0 * _scalar_vec_bytes(a),
        total_bytes=lambda a, s: _map_bytes(a, s) * (1.0 + _kept_fraction(s)),
    ),
    # Any other input strides: VEC strided scalar loads (an expanded input hits the cache) and one
    # VEC store per step.
    "drop_block_strided_kernel": KernelSpec(
        "memory", 256, 6,
        in_flight_per_thread=lambda a, s: 2.0 * _scalar_vec_bytes(a),
        total_bytes=lambda a, s: _map_bytes(a, s) * (1.0 + _kept_fraction(s)),
    ),
    "drop_pool_planes_kernel": KernelSpec(
        "memory", 256, 6,
        in_flight_per_thread=lambda a, s: _scalar_vec_bytes(a) * _plane_lane_use(a, s),
        total_bytes=lambda a, s: _map_bytes(a, s) * _kept_fraction(s),
    ),
    # Static shared memory: 256 x VEC partial values (+ int64 indices for "max"): 24 KiB, 25 KiB
    # as cuobjdump reports it (with the 1 KiB the sm_90 runtime reserves per block).
    "drop_pool_channels_kernel": KernelSpec(
        "memory", 256, 6, max_shared_bytes=25 * 1024,
        in_flight_per_thread=lambda a, s: float(_scalar_vec_bytes(a)),
        total_bytes=lambda a, s: _map_bytes(a, s) * _kept_fraction(s),
    ),
    # The dense dx store per step (grad_out and argmax are small and stay in L2).
    "drop_pool_backward_kernel": KernelSpec(
        "memory", 256, 5,
        in_flight_per_thread=lambda a, s: float(_scalar_vec_bytes(a)),
        total_bytes=_map_bytes,
    ),
    # The direct-form tile kernels (mining_tiles.cuh): a 16 x 16 block over a 32 x 32 tile of pairs,
    # static shared memory 2 stages x 2 sides x 16 x 36 accumulators (+ 32 labels): 10.25 KiB in
    # fp32, 19.25 KiB in float64. The fast path keeps 4 blocks per SM; float64 and the scalar fallback
    # (rows not 16-byte aligned) 2 (they are not the speed path and need up to 96 registers).
    "pairwise_distance_kernel": KernelSpec("compute", 256, 4, max_shared_bytes=20 * 1024, slow_blocks_per_sm=2),
    "mining_select_kernel": KernelSpec("compute", 256, 4, max_shared_bytes=20 * 1024, slow_blocks_per_sm=2),
    "mining_splitk_kernel": KernelSpec("compute", 256, 4, max_shared_bytes=20 * 1024, slow_blocks_per_sm=2),
    # GEMM form: a 16 x 16 block over a 128 x 128 tile, 8 x 8 accumulators per thread: 2 blocks per
    # SM with 16-byte loads (127 registers), 1 with the scalar fallback (167); 29 KiB of static shared
    # memory (stages, the candidate tile's labels and norms, one record per thread for the row merge).
    "mining_gemm_bounds_kernel": KernelSpec("compute", 256, 2, max_shared_bytes=29 * 1024, slow_blocks_per_sm=1),
    # One warp per row, 16 loads in flight per lane (nvcc unrolls the loop 16 times).
    "mining_norms_kernel": KernelSpec(
        "memory", 128, 8,
        in_flight_per_thread=lambda a, s: 16.0 * _SCALAR_BYTES[a[0]],
        total_bytes=_embedding_bytes,
    ),
    # The finalizers: 2N (anchor, class) items, each one single-warp block walking a short chain of
    # dependent L2 round trips (32 one-warp blocks fit an SM: 64 registers).
    **{
        family: KernelSpec("latency", 32, 32, item_us=lambda a, s, f=family: _finalize_item_us(f, *_embedding_shape(s)))
        for family in ("mining_splitk_finalize_kernel", "mining_finalize_kernel", "mining_gemm_finalize_kernel")
    },
    # One block of 1024 threads groups the 2N chosen pairs by target row (21 KiB of shared memory).
    "mining_group_pairs_kernel": KernelSpec(
        "latency", 1024, 1, max_shared_bytes=21 * 1024,
        item_us=lambda a, s: _group_pairs_us(_embedding_shape(s)[0]),
    ),
    # Beyond 1024 pairs: blocks of (256 pairs, slice of 1024 earlier pairs) count ranks (4 KiB of
    # shared memory, 5 KiB as cuobjdump reports it with the 1 KiB the runtime reserves per block),
    # issue-bound: the model lets one block at a time use an SM's schedulers.
    "mining_rank_pairs_kernel": KernelSpec(
        "latency", 256, 1, max_shared_bytes=5 * 1024, item_us=lambda a, s: _rank_pairs_block_us(),
    ),
    # 2N pairs, one thread each: read the target, its offset and rank, write the slot.
    "mining_scatter_pairs_kernel": KernelSpec(
        "latency", 256, 4, item_us=lambda a, s: 3 * MEMORY_LATENCY_NS * 1e-3,
    ),
    # pairwise_distance's split-K finalize: at most 132 x 1024 outputs (split-K only runs while the
    # tile pairs are fewer than the SMs), each a short chain of k-split loads from L2.
    "pairwise_splitk_finalize_kernel": KernelSpec(
        "latency", 256, 4,
        item_us=lambda a, s: _pairwise_splitk_finalize_us(_embedding_shape(s)[0], int(s.get("M", s["N"])),
                                                          _embedding_shape(s)[1]),
    ),
    # Hub chunks: a block sums its <= pairs_per_chunk pairs into a partial row, one anchor row load per
    # pair and the partial's store. Without a hub (shape["hub_pairs"] absent or 0) it moves nothing.
    "mining_backward_chunks_kernel": KernelSpec(
        "memory", 256, 4, slow_blocks_per_sm=3,
        in_flight_per_thread=lambda a, s: float(_SCALAR_BYTES[a[0]] + 4),
        total_bytes=lambda a, s: float(s.get("hub_pairs", 0)) * _embedding_shape(s)[1] * (_SCALAR_BYTES[a[0]] + 4),
    ),
    # Row j of dx: x_j, x_p(j), x_n(j) (and the anchors that chose j, L2 hits) and the dx store.
    "mining_backward_rows_kernel": KernelSpec(
        "memory", 256, 5, slow_blocks_per_sm=4,
        in_flight_per_thread=lambda a, s: 4.0 * _SCALAR_BYTES[a[0]],
        total_bytes=lambda a, s: 2.0 * _embedding_bytes(a, s),
    ),
    # The fused triplet loss on the mined pairs (triplet_loss_kernels.cuh): one block of 256 threads over the N
    # anchors, by design (the loss's fixed-order tree sum needs one block). Each step of a thread reads d_ap,
    # d_an and idx_n of one anchor (the d_an load waits on idx_n's sign); the launch moves about N * (2 e + 8)
    # bytes, all of it in flight in one step up to N = 256, so at the paper's N = 128 it costs the launch
    # floor (N = 4096: 16 dependent steps, about 10-20 us, beside milliseconds of mining). The backward also
    # writes two gradients per anchor. Shared memory: 256 partial sums and counts (4 KiB in float64), 5 KiB as
    # cuobjdump reports it with the 1 KiB reserved per block; the backward's 256 counts, 3 KiB.
    "triplet_loss_forward_kernel": KernelSpec(
        "memory", 256, 1, max_shared_bytes=5 * 1024,
        in_flight_per_thread=lambda a, s: _triplet_anchor_bytes(a),
        total_bytes=lambda a, s: _embedding_shape(s)[0] * _triplet_anchor_bytes(a),
    ),
    "triplet_loss_backward_kernel": KernelSpec(
        "memory", 256, 1, max_shared_bytes=3 * 1024,
        in_flight_per_thread=lambda a, s: _triplet_anchor_bytes(a) + 2 * _SCALAR_BYTES[a[0]],
        total_bytes=lambda a, s: _embedding_shape(s)[0] * (_triplet_anchor_bytes(a) + 2 * _SCALAR_BYTES[a[0]]),
    ),
}


def resident_blocks_per_sm(threads: int, registers: int, shared_bytes: int, gpu: str = "H200") -> int:
    """Blocks of `threads` threads using `registers` per thread and `shared_bytes` of static shared
    memory that fit on one SM (registers are allocated per warp in units of 256)."""
    g = GPUS[gpu]
    warps = math.ceil(threads / 32)
    regs_per_warp = math.ceil(max(registers, 1) * 32 / 256) * 256
    by_regs = (g.regs_per_sm // regs_per_warp) // warps
    by_threads = g.max_threads_per_sm // (warps * 32)
    by_shared = g.shared_bytes_per_sm // (shared_bytes + g.shared_reserved_per_block)
    return min(by_regs, by_threads, by_shared, g.max_blocks_per_sm)


def register_ceiling(spec: KernelSpec, gpu: str = "H200", args: list[str] | None = None) -> int:
    """The most registers per thread that keep spec.blocks_for(args) blocks of spec.threads resident."""
    g = GPUS[gpu]
    warps = math.ceil(spec.threads / 32)
    per_warp = g.regs_per_sm // (spec.blocks_for(args) * warps)
    return min(255, (per_warp // 256) * 256 // 32)


@dataclasses.dataclass(frozen=True)
class ParallelismVerdict:
    """What check_parallelism found for one launch."""

    family: str
    ok: bool
    have: float  # bytes in flight (memory) or resident warps (compute)
    need: float
    unit: str
    detail: str


def latency_budget_us(pass_us: float | None = None) -> float:
    """The most a latency kernel's launch may take: LATENCY_BUDGET_FLOORS launch floors, or
    LATENCY_PASS_FRACTION of its pass's predicted time (predict(...)["us"]) when that is larger."""
    budget = LATENCY_BUDGET_FLOORS * LAUNCH_FLOOR_US
    if pass_us is not None:
        budget = max(budget, LATENCY_PASS_FRACTION * pass_us)
    return budget


def launch_us(launch: Launch, shape: dict, gpu: str = "H200") -> float:
    """Predicted time of a latency kernel's launch: its waves (blocks over SMs x resident blocks)
    times the time of one block's work item, and never below the launch floor."""
    family, args = parse_kernel(launch.kernel)
    spec = KERNELS[family]
    if spec.bound != "latency":
        raise ValueError(f"{family} is not a latency kernel (its bound is {spec.bound!r})")
    return max(LAUNCH_FLOOR_US, _waves(launch.blocks, spec.blocks_for(args), gpu) * spec.item_us(args, shape))


def check_parallelism(launch: Launch, shape: dict, gpu: str = "H200", pass_us: float | None = None) -> ParallelismVerdict:
    """Whether `launch` offers enough parallelism to fill every SM of `gpu`.

    Resident blocks = min(grid blocks, SMs x spec.blocks_per_sm). Memory-bound kernels need
    bytes in flight = resident threads x in_flight_per_thread >= min(HBM bandwidth x
    MEMORY_LATENCY_NS, the launch's total bytes) (Little's law), and when the launch moves more than
    that target its grid must cover every SM. FMA-bound kernels need a block on every SM and
    MIN_COMPUTE_WARPS_PER_SM resident warps per SM. Latency kernels are exempt from filling the GPU;
    their predicted time (launch_us) must stay within latency_budget_us(pass_us), pass_us being the
    predicted time of the pass the launch belongs to (None: the budget of LATENCY_BUDGET_FLOORS floors).
    """
    family, args = parse_kernel(launch.kernel)
    if family not in KERNELS:
        raise KeyError(f"kernel {family} has no entry in benchmarks/perf_model.py KERNELS (add its model)")
    spec = KERNELS[family]
    g = GPUS[gpu]
    threads = launch.threads_per_block
    if threads > spec.threads:
        return ParallelismVerdict(family, False, threads, spec.threads, "threads",
                                  f"block of {threads} threads exceeds the {spec.threads} the model assumes")
    resident_blocks = min(launch.blocks, g.sms * spec.blocks_for(args))
    shape_note = f"grid {launch.grid} x block {launch.block}, {resident_blocks} resident blocks"
    if spec.bound == "latency":
        us = launch_us(launch, shape, gpu)
        budget = latency_budget_us(pass_us)
        return ParallelismVerdict(family, us <= budget, us, budget, "us predicted (latency kernel: at most)",
                                  shape_note)
    if spec.bound == "memory":
        target = g.hbm_bytes_per_s * MEMORY_LATENCY_NS * 1e-9
        total = spec.total_bytes(args, shape)
        need = min(target, total)
        have = resident_blocks * threads * spec.in_flight_per_thread(args, shape)
        ok = have >= need and (total <= target or launch.blocks >= g.sms)
        return ParallelismVerdict(family, ok, have, need, "bytes in flight", shape_note)
    warps_per_block = math.ceil(threads / 32)
    have = resident_blocks * warps_per_block
    need = g.sms * MIN_COMPUTE_WARPS_PER_SM
    ok = have >= need and launch.blocks >= g.sms
    return ParallelismVerdict(family, ok, have, need, "resident warps", shape_note)
