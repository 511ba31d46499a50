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
  resident warps for FMA-bound ones.

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
    "LAUNCH_FLOOR_US",
    "MEMORY_LATENCY_NS",
    "Gpu",
    "KernelSpec",
    "Launch",
    "ParallelismVerdict",
    "check_parallelism",
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
    """One launch of a pass: HBM bytes, arithmetic, and the FP32 issue slots the arithmetic takes."""

    bytes: float
    flops: float = 0.0
    fp32_slots: float = 0.0  # an FMA or a subtract each take one slot


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
        pairs = N * N * D
        if N >= GEMM_FORM_MIN_N:  # GEMM form: one FMA per (pair, d)
            distance = dict(flops=2.0 * pairs, fp32_slots=float(pairs))
        else:  # direct form sum((a - b)^2): a subtract and an FMA per (pair, d)
            distance = dict(flops=3.0 * pairs, fp32_slots=2.0 * pairs)
        rows = N * D * e
        if op == "pairwise_distance":
            # Forward reads X once (tiles reuse it from L2) and writes N x N; backward is two GEMMs.
            fwd = [_Kernel(rows + N * N * e, **distance)]
            bwd = [_Kernel(N * N * e + 2 * rows, flops=4.0 * pairs, fp32_slots=2.0 * pairs)]
            fwd_bwd = (fwd, bwd)
        else:  # mining_loss: batch_hard_mine + soft-margin loss
            vectors = 4 * N * 8
            select = _Kernel(rows + vectors, **distance)
            finalize = _Kernel(2 * rows + vectors, flops=6.0 * N * D, fp32_slots=4.0 * N * D)
            loss = _Kernel(4 * N * 8)  # one fused elementwise + mean over N anchors
            group_pairs = _Kernel(4 * N * 8)
            gather = _Kernel(3 * rows + vectors, flops=8.0 * N * D, fp32_slots=4.0 * N * D)
            fwd_bwd = ([select, finalize, loss], [loss, group_pairs, gather])
    fwd, bwd = fwd_bwd
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + bwd}[pass_]


def predict(op: str, pass_: str, shape: dict, dtype: torch.dtype, gpu: str = "H200") -> dict:
    """Predicted cost of one fused pass.

    Args:
        op: one of "copy", "drop", "drop_pool_max", "drop_pool_avg", "pairwise_distance", "mining_loss".
        pass_: "fwd", "bwd" or "fwd+bwd".
        shape: {"N", "C", "H", "W"} for the feature-map ops (optional "drop_rows": the dropped
            fraction of rows, default 8/24), {"N", "D"} for the mining ops.
        dtype: float32, float16, bfloat16 or float64 (fp16/bf16 accumulate in fp32).
        gpu: "H100" or "H200".

    Returns:
        {"bytes": HBM bytes moved, "flops": FLOPs (an FMA is 2), "us": predicted time in
        microseconds (each kernel: the larger of its HBM time at HBM_EFFICIENCY, its FP32 time at
        FMA_EFFICIENCY and LAUNCH_FLOOR_US), "floor_us": bytes / HBM peak}.
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
        us += max(memory_us, compute_us, LAUNCH_FLOOR_US)
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

    bound: "memory" (judged by bytes in flight) or "compute" (judged by resident warps).
    threads: the largest block its launch config uses.
    blocks_per_sm: the resident blocks per SM the launch shape assumes; the binary audit requires
        registers <= register_ceiling(...) and shared memory <= max_shared_bytes so that they fit.
    in_flight_per_thread: for memory-bound kernels, HBM bytes one thread has outstanding per loop
        step (its loads and stores), from the template arguments and the problem shape.
    total_bytes: HBM bytes of the whole launch (a launch that moves less than the Little's-law
        target needs only to have all of it in flight at once).
    """

    bound: str
    threads: int
    blocks_per_sm: int
    max_shared_bytes: int = 0
    in_flight_per_thread: Callable[[list[str], dict], float] | None = None
    total_bytes: Callable[[list[str], dict], float] | None = None


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
    "pairwise_distance_kernel": KernelSpec("compute", 256, 4, max_shared_bytes=10 * 1024),
    "mining_select_kernel": KernelSpec("compute", 256, 4, max_shared_bytes=10 * 1024),
    # One warp per anchor re-measures two pairs: two scalar loads per lane per step.
    "mining_finalize_kernel": KernelSpec(
        "memory", 256, 6,
        in_flight_per_thread=lambda a, s: 2.0 * _SCALAR_BYTES[a[0]],
        total_bytes=lambda a, s: 2.0 * _embedding_bytes(a, s),
    ),
    # Row j of dx: x_j, x_p(j), x_n(j) per step (plus the rows of the anchors that chose j).
    "mining_backward_kernel": KernelSpec(
        "memory", 256, 5,
        in_flight_per_thread=lambda a, s: 3.0 * _SCALAR_BYTES[a[0]],
        total_bytes=lambda a, s: 4.0 * _embedding_bytes(a, s),
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


def register_ceiling(spec: KernelSpec, gpu: str = "H200") -> int:
    """The most registers per thread that keep spec.blocks_per_sm blocks of spec.threads resident."""
    g = GPUS[gpu]
    warps = math.ceil(spec.threads / 32)
    per_warp = g.regs_per_sm // (spec.blocks_per_sm * warps)
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


def check_parallelism(launch: Launch, shape: dict, gpu: str = "H200") -> ParallelismVerdict:
    """Whether `launch` offers enough parallelism to fill every SM of `gpu`.

    Resident blocks = min(grid blocks, SMs x spec.blocks_per_sm). Memory-bound kernels need
    bytes in flight = resident threads x in_flight_per_thread >= min(HBM bandwidth x
    MEMORY_LATENCY_NS, the launch's total bytes) (Little's law), and when the launch moves more than
    that target its grid must cover every SM. FMA-bound kernels need a block on every SM and
    MIN_COMPUTE_WARPS_PER_SM resident warps per SM.
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
    resident_blocks = min(launch.blocks, g.sms * spec.blocks_per_sm)
    shape_note = f"grid {launch.grid} x block {launch.block}, {resident_blocks} resident blocks"
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
