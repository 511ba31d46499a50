// The tile machinery shared by the metric-learning kernels: a block of 16 x 16 threads walks a
// kTile x kTile tile of (row of a, row of b) pairs over kK-element chunks of the embedding. The
// chunks travel global -> registers -> shared memory in 16-byte vectors, double-buffered: the
// vectors of chunk c + 1 are in flight while chunk c is multiplied out of shared memory, with one
// barrier per chunk. Each thread keeps a kMicro x kMicro register block of pairs:
//   rows (h * kTile / 2 + ty * kMicro / 2 + r), columns (h * kTile / 2 + tx * kMicro / 2 + c),
//   h in {0, 1}, r, c < kMicro / 2,
// so a thread's values for one k are two vector reads per side from shared memory.
//
// Also here: the warp-level helpers (direct-form distance of one pair by a warp, the shuffle merge of
// mining winners) and the device-side assert.
#pragma once

#include "device_prelude.h"

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../common/mining.h"
#include "mining_launch.cuh"

// A failed check on data only the device can read (an index out of range): a device-side assert
// like ATen's index kernels on a GPU (the CUDA context reports "device-side assert triggered"), and
// on the emulator an exception that the launch check turns into a c10::Error with the message.
#if defined(BDB_CUDA_EMULATION) && !defined(__CUDACC__)
#define BDB_KERNEL_ASSERT(cond, msg)                                                                 \
  do {                                                                                               \
    if (!(cond)) throw std::runtime_error(std::string("device-side assert triggered: ") + (msg));    \
  } while (0)
#else
#define BDB_KERNEL_ASSERT(cond, msg) CUDA_KERNEL_ASSERT_MSG(cond, msg)
#endif

namespace bdb {

// Two stages of a tile's chunk, each row padded (kMiningSmemPad) for aligned vector reads.
template <typename acc_t, int kTile, int kK>
struct alignas(16) MiningStages {
  acc_t a[2][kK][kTile + kMiningSmemPad];
  acc_t b[2][kK][kTile + kMiningSmemPad];
};

// Global -> registers -> shared for one chunk: 2 * kTile rows of kK elements as VEC-element vectors
// (VEC divides D and kK, and the host passes VEC > 1 only for 16-byte aligned rows, so a vector is
// all inside or all outside [k0, k_end)). Rows past the end and columns past k_end read as 0.
template <typename scalar_t, typename acc_t, int VEC, int kTile, int kK>
struct MiningChunkLoader {
  static_assert(kK % VEC == 0, "a vector must not straddle two chunks");
  static constexpr int kVecPerRow = kK / VEC;
  static constexpr int kVecPerSide = kTile * kVecPerRow;
  static constexpr int kLoads = (2 * kVecPerSide + kMiningThreads - 1) / kMiningThreads;
  VecOf<scalar_t, VEC> reg[kLoads];

  __device__ inline void fetch(const scalar_t* __restrict__ a, int64_t a0, int64_t a_rows,
                               const scalar_t* __restrict__ b, int64_t b0, int64_t b_rows, int64_t D, int64_t k0,
                               int64_t k_end) {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int v = static_cast<int>(threadIdx.x) + l * kMiningThreads;
      const bool side_b = v >= kVecPerSide;
      const int idx = side_b ? v - kVecPerSide : v;
      const int64_t row = (side_b ? b0 : a0) + idx / kVecPerRow;
      const int64_t k = k0 + (idx % kVecPerRow) * VEC;
      const bool inside = v < 2 * kVecPerSide && row < (side_b ? b_rows : a_rows) && k < k_end;
      if (inside) {
        reg[l] = *reinterpret_cast<const VecOf<scalar_t, VEC>*>((side_b ? b : a) + row * D + k);
      } else {
#pragma unroll
        for (int e = 0; e < VEC; ++e) reg[l].v[e] = scalar_t(0);
      }
    }
  }

  __device__ inline void store(acc_t (&sa)[kK][kTile + kMiningSmemPad], acc_t (&sb)[kK][kTile + kMiningSmemPad]) const {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int v = static_cast<int>(threadIdx.x) + l * kMiningThreads;
      if (v >= 2 * kVecPerSide) continue;
      const bool side_b = v >= kVecPerSide;
      const int idx = side_b ? v - kVecPerSide : v;
      const int row = idx / kVecPerRow;
      const int kk = (idx % kVecPerRow) * VEC;
#pragma unroll
      for (int e = 0; e < VEC; ++e) {
        const acc_t value = static_cast<acc_t>(reg[l].v[e]);
        if (side_b) {
          sb[kk + e][row] = value;
        } else {
          sa[kk + e][row] = value;
        }
      }
    }
  }
};

// Thread (tx, ty) of the 16 x 16 block: its register block holds rows of a by ty, rows of b by tx.
struct MiningThread {
  int tx, ty;
};
__device__ inline MiningThread mining_thread() {
  const int t = static_cast<int>(threadIdx.x);
  return {t % kMiningThreadsPerSide, t / kMiningThreadsPerSide};
}

// Row (of the tile) of a thread's register-block entry r (ty for a's rows, tx for b's).
template <int kTile>
BDB_INLINE int mining_micro_row(int t, int r) {
  constexpr int kHalf = kTile / kMiningThreadsPerSide / 2;
  return (r / kHalf) * (kTile / 2) + t * kHalf + r % kHalf;
}

// One chunk of a stage into the register block: kDirect adds (a - b)^2 (summed per chunk first,
// which bounds the rounding by about (D / kK + kK) ulps), otherwise a * b (a GEMM).
template <typename acc_t, int kTile, int kK, bool kDirect>
__device__ inline void mining_micro_chunk(const acc_t (&sa)[kK][kTile + kMiningSmemPad],
                                          const acc_t (&sb)[kK][kTile + kMiningSmemPad],
                                          acc_t (&acc)[kTile / kMiningThreadsPerSide][kTile / kMiningThreadsPerSide]) {
  constexpr int kM = kTile / kMiningThreadsPerSide;
  constexpr int kHalf = kM / 2;
  using Half = VecOf<acc_t, kHalf>;
  const auto [tx, ty] = mining_thread();
  acc_t part[kM][kM];
#pragma unroll
  for (int r = 0; r < kM; ++r) {
#pragma unroll
    for (int c = 0; c < kM; ++c) part[r][c] = kDirect ? acc_t(0) : acc[r][c];
  }
#pragma unroll
  for (int kk = 0; kk < kK; ++kk) {
    acc_t av[kM];
    acc_t bv[kM];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const Half va = *reinterpret_cast<const Half*>(&sa[kk][h * (kTile / 2) + ty * kHalf]);
      const Half vb = *reinterpret_cast<const Half*>(&sb[kk][h * (kTile / 2) + tx * kHalf]);
#pragma unroll
      for (int e = 0; e < kHalf; ++e) {
        av[h * kHalf + e] = va.v[e];
        bv[h * kHalf + e] = vb.v[e];
      }
    }
#pragma unroll
    for (int r = 0; r < kM; ++r) {
#pragma unroll
      for (int c = 0; c < kM; ++c) {
        if constexpr (kDirect) {
          const acc_t diff = av[r] - bv[c];
          part[r][c] += diff * diff;
        } else {
          part[r][c] += av[r] * bv[c];
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kM; ++r) {
#pragma unroll
    for (int c = 0; c < kM; ++c) acc[r][c] = kDirect ? acc[r][c] + part[r][c] : part[r][c];
  }
}

// The register block of the tile (rows a0.. of a, rows b0.. of b) over the columns [k_begin, k_end)
// (k_begin a multiple of kK). Contains __syncthreads: every thread of the block calls it with the
// same arguments; it leaves the stages free for the next call.
template <typename scalar_t, typename acc_t, int VEC, int kTile, int kK, bool kDirect>
__device__ inline void mining_tile_accumulate(MiningStages<acc_t, kTile, kK>& st, const scalar_t* __restrict__ a,
                                              int64_t a0, int64_t a_rows, const scalar_t* __restrict__ b, int64_t b0,
                                              int64_t b_rows, int64_t D, int64_t k_begin, int64_t k_end,
                                              acc_t (&acc)[kTile / kMiningThreadsPerSide][kTile / kMiningThreadsPerSide]) {
  constexpr int kM = kTile / kMiningThreadsPerSide;
#pragma unroll
  for (int r = 0; r < kM; ++r) {
#pragma unroll
    for (int c = 0; c < kM; ++c) acc[r][c] = acc_t(0);
  }
  if (k_begin >= k_end) return;  // block-uniform
  MiningChunkLoader<scalar_t, acc_t, VEC, kTile, kK> loader;
  loader.fetch(a, a0, a_rows, b, b0, b_rows, D, k_begin, k_end);
  int stage = 0;
  for (int64_t k0 = k_begin; k0 < k_end; k0 += kK) {
    loader.store(st.a[stage], st.b[stage]);
    // One barrier per chunk: a thread writes stage s again only after every thread has passed the
    // barrier of the chunk in between, i.e. has finished reading stage s.
    __syncthreads();
    if (k0 + kK < k_end) loader.fetch(a, a0, a_rows, b, b0, b_rows, D, k0 + kK, k_end);
    mining_micro_chunk<acc_t, kTile, kK, kDirect>(st.a[stage], st.b[stage], acc);
    stage ^= 1;
  }
  __syncthreads();  // the last stage is read before the next call writes stage 0
}

// Hands store(i, j, value) each entry of thread (tx, ty)'s register block of the tile (rows a0.. of
// a, rows b0.. of b) that lies inside the a_rows x b_rows result.
template <int kTile, typename acc_t, typename Store>
__device__ inline void mining_tile_store(const acc_t (&acc)[kTile / kMiningThreadsPerSide][kTile / kMiningThreadsPerSide],
                                         int tx, int ty, int64_t a0, int64_t a_rows, int64_t b0, int64_t b_rows,
                                         Store store) {
  constexpr int kM = kTile / kMiningThreadsPerSide;
#pragma unroll
  for (int r = 0; r < kM; ++r) {
#pragma unroll
    for (int c = 0; c < kM; ++c) {
      const int64_t i = a0 + mining_micro_row<kTile>(ty, r);
      const int64_t j = b0 + mining_micro_row<kTile>(tx, c);
      if (i < a_rows && j < b_rows) store(i, j, acc[r][c]);
    }
  }
}

template <typename acc_t>
BDB_INLINE acc_t mining_sqrt(acc_t v) {
  return std::sqrt(v);
}

// Exchange a MiningBest with the lane `offset` away (xor) and keep the better of each side.
template <typename acc_t>
__device__ inline void mining_shuffle_merge(MiningBest<acc_t>& best, int offset, int width) {
  const acc_t pv = __shfl_xor_sync(0xffffffffu, best.pos_value, offset, width);
  const int64_t pi = __shfl_xor_sync(0xffffffffu, best.pos_index, offset, width);
  const acc_t nv = __shfl_xor_sync(0xffffffffu, best.neg_value, offset, width);
  const int64_t ni = __shfl_xor_sync(0xffffffffu, best.neg_index, offset, width);
  best.offer_positive(pv, pi);
  best.offer_negative(nv, ni);
}

// sum((x_i - x_j)^2) by one warp: lane-strided partial sums, then a fixed xor tree, so every lane
// ends with the same, deterministic value: the direct form every CUDA output distance is measured
// in. j < 0 gives 0. All 32 lanes must call it.
template <typename scalar_t, typename acc_t>
__device__ inline acc_t warp_squared_distance(const scalar_t* __restrict__ x, int64_t i, int64_t j, int64_t D,
                                              int lane) {
  acc_t part = acc_t(0);
  if (i >= 0 && j >= 0) {
    const scalar_t* a = x + i * D;
    const scalar_t* b = x + j * D;
    for (int64_t d = lane; d < D; d += kWarpSize) {
      const acc_t diff = static_cast<acc_t>(a[d]) - static_cast<acc_t>(b[d]);
      part += diff * diff;
    }
  }
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) part += __shfl_xor_sync(0xffffffffu, part, offset);
  return part;
}

// The last step of every mining path: the warp of (anchor i, class) merges its lanes' winners of that
// class (the order is total, so the merge order does not matter), re-measures the winning pair in the
// direct form and lane 0 writes the output by the shared none-rule (common/mining.h).
template <typename scalar_t, typename acc_t>
__device__ inline void mining_write_class_winner(const scalar_t* __restrict__ x, int64_t i, bool positive,
                                                 MiningBest<acc_t> best, int64_t D, int lane,
                                                 scalar_t* __restrict__ d_ap, scalar_t* __restrict__ d_an,
                                                 int64_t* __restrict__ idx_p, int64_t* __restrict__ idx_n) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    if (positive) {
      const acc_t v = __shfl_xor_sync(0xffffffffu, best.pos_value, offset);
      const int64_t j = __shfl_xor_sync(0xffffffffu, best.pos_index, offset);
      best.offer_positive(v, j);
    } else {
      const acc_t v = __shfl_xor_sync(0xffffffffu, best.neg_value, offset);
      const int64_t j = __shfl_xor_sync(0xffffffffu, best.neg_index, offset);
      best.offer_negative(v, j);
    }
  }
  const int64_t winner = positive ? best.pos_index : best.neg_index;
  const acc_t s = warp_squared_distance<scalar_t, acc_t>(x, i, winner, D, lane);
  if (lane != 0) return;
  if (positive) {
    const MinedPair<acc_t> out = mined_positive(i, winner, s);
    d_ap[i] = static_cast<scalar_t>(out.distance);
    idx_p[i] = out.index;
  } else {
    const MinedPair<acc_t> out = mined_negative(winner, s);
    d_an[i] = static_cast<scalar_t>(out.distance);
    idx_n[i] = out.index;
  }
}

}  // namespace bdb
