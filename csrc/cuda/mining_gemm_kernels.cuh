// Device code of batch_hard_mine's GEMM-form path (N >= kMiningGemmMinN, fp32/fp16/bf16), the CUDA
// counterpart of the CPU kernel's two passes (cpu/mining_cpu.cpp):
//   1. mining_norms_kernel: |x_i|^2 per row.
//   2. mining_gemm_bounds_kernel: 128 x 128 tiles of dot products (fp32 FMA, register-blocked 8 x 8
//      per thread). s~ = |x_i|^2 + |x_j|^2 - 2 x_i.x_j is within e = gemm_form_error_bound(...) of the
//      direct-form s, whatever the summation order. Per (candidate tile, anchor) it keeps a
//      MiningGemmRecord: the tile's best lower bound for the winner (floor/ceiling), its top candidate
//      and how far the rest of the tile could reach. O(N * N / 128) memory, never N x N.
//   3. mining_gemm_finalize_kernel, one warp per (anchor, class): the global floor (the hardest
//      positive is >= max over j of s~_j - e_j; the hardest negative <= min of s~_j + e_j); a tile
//      whose top cannot reach it is skipped, a tile whose top alone can is answered by measuring that
//      one candidate in the direct form, and a tile whose rest can reach it has all its candidates of
//      the class measured in the direct form. The winner among the measured candidates, by the total
//      order of common/mining.h, is exactly the direct-form winner: the bound never drops it.
// No tensor cores: TF32 would need a bound 2^13 times wider, and the re-measure would cover most
// tiles. NaN and inf rows make the bounds NaN or infinite, so their tiles are measured directly.
#pragma once

#include "mining_tiles.cuh"

#include <cstdint>
#include <limits>

namespace bdb {

template <typename acc_t>
BDB_INLINE acc_t nan_max(acc_t a, acc_t b) {
  return (is_nan_value(a) || a > b) ? a : b;
}

template <typename acc_t>
BDB_INLINE acc_t nan_min(acc_t a, acc_t b) {
  return (is_nan_value(a) || a < b) ? a : b;
}

// What the GEMM form says about one anchor's candidates in one tile (bounds lo = s~ - e, hi = s~ + e).
// Positives: floor = max lo (the hardest positive is at least this), top = the candidate with the
// largest hi (ties: smaller index), rest = the largest hi of the others (-inf: none). Negatives the
// mirror image. An index of -1: no candidate of that class in the tile.
template <typename acc_t>
struct MiningGemmRecord {
  acc_t pos_floor, pos_top, pos_rest;
  acc_t neg_ceiling, neg_top, neg_rest;
  int64_t pos_top_index, neg_top_index;

  BDB_INLINE void reset() {
    const acc_t inf = std::numeric_limits<acc_t>::infinity();
    pos_floor = pos_top = pos_rest = -inf;
    neg_ceiling = neg_top = neg_rest = inf;
    pos_top_index = neg_top_index = -1;
  }

  // A positive whose bounds are [lo, hi], or (merge) another record's top with rest already counted.
  BDB_INLINE void offer_positive(acc_t lo, acc_t hi, int64_t j) {
    pos_floor = nan_max(pos_floor, lo);
    if (positive_better(hi, j, pos_top, pos_top_index)) {
      if (pos_top_index >= 0) pos_rest = nan_max(pos_rest, pos_top);
      pos_top = hi;
      pos_top_index = j;
    } else {
      pos_rest = nan_max(pos_rest, hi);
    }
  }

  BDB_INLINE void offer_negative(acc_t lo, acc_t hi, int64_t j) {
    neg_ceiling = nan_min(neg_ceiling, hi);
    if (negative_better(lo, j, neg_top, neg_top_index)) {
      if (neg_top_index >= 0) neg_rest = nan_min(neg_rest, neg_top);
      neg_top = lo;
      neg_top_index = j;
    } else {
      neg_rest = nan_min(neg_rest, lo);
    }
  }

  BDB_INLINE void merge(const MiningGemmRecord& o) {
    if (o.pos_top_index >= 0) offer_positive(o.pos_floor, o.pos_top, o.pos_top_index);
    pos_rest = nan_max(pos_rest, o.pos_rest);
    if (o.neg_top_index >= 0) offer_negative(o.neg_top, o.neg_ceiling, o.neg_top_index);
    neg_rest = nan_min(neg_rest, o.neg_rest);
  }
};

// |x_i|^2 for every row: one warp per row.
template <typename scalar_t>
__global__ void mining_norms_kernel(const scalar_t* __restrict__ x, int64_t N, int64_t D,
                                    at::opmath_type<scalar_t>* __restrict__ norms) {
  using acc_t = at::opmath_type<scalar_t>;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t warps = blockDim.x / kWarpSize;
  const int64_t warp = threadIdx.x / kWarpSize;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * warps; base < N; base += static_cast<int64_t>(gridDim.x) * warps) {
    const int64_t i = base + warp;
    acc_t part = acc_t(0);
    if (i < N) {
      for (int64_t d = lane; d < D; d += kWarpSize) {
        const acc_t v = static_cast<acc_t>(x[i * D + d]);
        part += v * v;
      }
    }
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) part += __shfl_xor_sync(0xffffffffu, part, offset);
    if (i < N && lane == 0) norms[i] = part;
  }
}

// Step 2: block (anchor tile, candidate tile) of 128 x 128 dot products, then one record per anchor.
template <typename scalar_t, int VEC>
__global__ void mining_gemm_bounds_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ labels,
                                          const at::opmath_type<scalar_t>* __restrict__ norms, int64_t N, int64_t D,
                                          at::opmath_type<scalar_t> unit_roundoff, at::opmath_type<scalar_t> tiny,
                                          MiningGemmRecord<at::opmath_type<scalar_t>>* __restrict__ records) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int kM = kMiningGemmMicro;
  __shared__ MiningStages<acc_t, kMiningGemmTile, kMiningGemmTileK> st;
  __shared__ int64_t candidate_labels[kMiningGemmTile];
  __shared__ acc_t candidate_norms[kMiningGemmTile];
  // One record per thread for the row being merged: the 16 threads of an anchor merge through here in
  // a fixed order (cheaper than 8 shuffles of a record per step, on the GPU and on the emulator).
  __shared__ MiningGemmRecord<acc_t> row_records[kMiningThreadsPerSide][kMiningThreadsPerSide];
  const auto [tx, ty] = mining_thread();
  const int64_t tiles = ceil_div(N, kMiningGemmTile);
  for (int64_t at_ = blockIdx.y; at_ < tiles; at_ += gridDim.y) {
    for (int64_t ct = blockIdx.x; ct < tiles; ct += gridDim.x) {
      const int64_t a0 = at_ * kMiningGemmTile;
      const int64_t b0 = ct * kMiningGemmTile;
      for (int e = threadIdx.x; e < kMiningGemmTile; e += blockDim.x) {
        candidate_labels[e] = b0 + e < N ? labels[b0 + e] : 0;
        candidate_norms[e] = b0 + e < N ? norms[b0 + e] : acc_t(0);
      }
      __syncthreads();
      acc_t dot[kM][kM];
      mining_tile_accumulate<scalar_t, acc_t, VEC, kMiningGemmTile, kMiningGemmTileK, false>(st, x, a0, N, x, b0, N, D,
                                                                                            0, D, dot);
#pragma unroll
      for (int r = 0; r < kM; ++r) {
        const int64_t i = a0 + mining_micro_row<kMiningGemmTile>(ty, r);
        MiningGemmRecord<acc_t> rec;
        rec.reset();
        if (i < N) {
          const int64_t li = labels[i];
          const acc_t ni = norms[i];
#pragma unroll
          for (int c = 0; c < kM; ++c) {
            const int cl = mining_micro_row<kMiningGemmTile>(tx, c);
            const int64_t j = b0 + cl;
            if (j >= N || j == i) continue;
            const acc_t nj = candidate_norms[cl];
            const acc_t approx = ni + nj - acc_t(2) * dot[r][c];
            const acc_t e = gemm_form_error_bound(ni, nj, D, unit_roundoff, tiny);
            if (candidate_labels[cl] == li) {
              rec.offer_positive(approx - e, approx + e, j);
            } else {
              rec.offer_negative(approx - e, approx + e, j);
            }
          }
        }
        row_records[ty][tx] = rec;
        __syncthreads();
        if (tx == 0 && i < N) {
          for (int k = 1; k < kMiningThreadsPerSide; ++k) rec.merge(row_records[ty][k]);
          records[ct * N + i] = rec;
        }
        __syncthreads();  // row_records is rewritten for the next row
      }
      __syncthreads();  // candidate_labels / candidate_norms are rewritten by the next tile
    }
  }
}

// sum((a - b)^2) by one thread, in four interleaved partial sums: the re-measure of a tile's
// candidates when many of them may win (near-identical embeddings).
template <typename scalar_t, typename acc_t>
__device__ inline acc_t lane_squared_distance(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b,
                                              int64_t D) {
  acc_t p0 = acc_t(0), p1 = acc_t(0), p2 = acc_t(0), p3 = acc_t(0);
  int64_t d = 0;
  for (; d + 4 <= D; d += 4) {
    const acc_t d0 = static_cast<acc_t>(a[d]) - static_cast<acc_t>(b[d]);
    const acc_t d1 = static_cast<acc_t>(a[d + 1]) - static_cast<acc_t>(b[d + 1]);
    const acc_t d2 = static_cast<acc_t>(a[d + 2]) - static_cast<acc_t>(b[d + 2]);
    const acc_t d3 = static_cast<acc_t>(a[d + 3]) - static_cast<acc_t>(b[d + 3]);
    p0 += d0 * d0;
    p1 += d1 * d1;
    p2 += d2 * d2;
    p3 += d3 * d3;
  }
  for (; d < D; ++d) {
    const acc_t d0 = static_cast<acc_t>(a[d]) - static_cast<acc_t>(b[d]);
    p0 += d0 * d0;
  }
  return (p0 + p1) + (p2 + p3);
}

// Step 3: the warp of (anchor i, class) re-measures the candidates the bounds cannot rule out.
template <typename scalar_t>
__global__ void mining_gemm_finalize_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ labels,
                                            int64_t N, int64_t D,
                                            const MiningGemmRecord<at::opmath_type<scalar_t>>* __restrict__ records,
                                            scalar_t* __restrict__ d_ap, scalar_t* __restrict__ d_an,
                                            int64_t* __restrict__ idx_p, int64_t* __restrict__ idx_n) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t inf = std::numeric_limits<acc_t>::infinity();
  const int lane = static_cast<int>(threadIdx.x);
  const int64_t tiles = ceil_div(N, kMiningGemmTile);
  for (int64_t item = blockIdx.x; item < 2 * N; item += gridDim.x) {
    const int64_t i = item / 2;
    const bool positive = item % 2 == 0;
    const int64_t li = labels[i];
    // The global bound on the winner (NaN when a NaN/inf row is involved: then nothing is ruled out).
    acc_t limit = positive ? -inf : inf;
    for (int64_t t = lane; t < tiles; t += kWarpSize) {
      limit = positive ? nan_max(limit, records[t * N + i].pos_floor) : nan_min(limit, records[t * N + i].neg_ceiling);
    }
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      const acc_t o = __shfl_xor_sync(0xffffffffu, limit, offset);
      limit = positive ? nan_max(limit, o) : nan_min(limit, o);
    }
    MiningBest<acc_t> best;
    best.reset();
    for (int64_t t = 0; t < tiles; ++t) {  // warp-uniform
      const MiningGemmRecord<acc_t>& rec = records[t * N + i];
      const int64_t top_index = positive ? rec.pos_top_index : rec.neg_top_index;
      if (top_index < 0) continue;
      const acc_t top = positive ? rec.pos_top : rec.neg_top;
      const acc_t rest = positive ? rec.pos_rest : rec.neg_rest;
      // Comparisons are negated so that NaN reaches.
      const bool top_reaches = positive ? !(top < limit) : !(top > limit);
      const bool rest_exists = positive ? rest != -inf : rest != inf;
      const bool rest_reaches = rest_exists && (positive ? !(rest < limit) : !(rest > limit));
      if (rest_reaches) {
        const int64_t j_end = (t + 1) * kMiningGemmTile < N ? (t + 1) * kMiningGemmTile : N;
        for (int64_t j = t * kMiningGemmTile + lane; j < j_end; j += kWarpSize) {
          const bool same = labels[j] == li;
          if (j == i || same != positive) continue;
          best.offer(lane_squared_distance<scalar_t, acc_t>(x + i * D, x + j * D, D), j, same);
        }
      } else if (top_reaches) {
        const acc_t s = warp_squared_distance<scalar_t, acc_t>(x, i, top_index, D, lane);
        best.offer(s, top_index, positive);
      }
    }
    mining_write_class_winner<scalar_t, acc_t>(x, i, positive, best, D, lane, d_ap, d_an, idx_p, idx_n);
  }
}

}  // namespace bdb
