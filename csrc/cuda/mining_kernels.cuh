// Device code of pairwise_distance and of batch_hard_mine's direct-form paths: kernels over raw
// pointers, no ATen tensors, so the CPU emulation harness and the standalone sanitizer driver can
// include this header as it is. The GEMM-form path (N >= 2048) is in mining_gemm_kernels.cuh, the
// backward in mining_backward_kernels.cuh.
//
// The direct form sum((a - b)^2) is measured in 32 x 32 tiles of pairs (mining_tiles.cuh): fp32 FMA,
// no tensor cores. Mining leaves partial results per block and a finalize kernel, one warp per
// (anchor, class), picks the winner by the total order of common/mining.h and re-measures it.
//   * N with enough tile pairs: mining_select_kernel (block = anchor tile x run of candidate tiles,
//     all of D) leaves a partial winner per (run, anchor); mining_finalize_kernel merges them.
//   * small N (N = 128: 16 tile pairs for 132 SMs): mining_splitk_kernel splits D across blocks and
//     stores partial sums; mining_splitk_finalize_kernel adds them in increasing k (fixed order).
//     pairwise_distance takes the same split-K at small N, with pairwise_splitk_finalize_kernel.
#pragma once

#include "mining_tiles.cuh"

#include <cstdint>
#include <limits>

namespace bdb {

// pairwise_distance: out[i, j] = |x_i - y_j| (or its square), one 32 x 32 tile per block step.
template <typename scalar_t, int VEC>
__global__ void pairwise_distance_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                         scalar_t* __restrict__ out, int64_t N, int64_t M, int64_t D,
                                         bool squared) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ MiningStages<acc_t, kMiningTile, kMiningTileK> st;
  const auto [tx, ty] = mining_thread();
  const int64_t row_tiles = ceil_div(N, kMiningTile);
  const int64_t col_tiles = ceil_div(M, kMiningTile);
  // Both loops are block-uniform, so every thread reaches every barrier in mining_tile_accumulate.
  for (int64_t rt = blockIdx.y; rt < row_tiles; rt += gridDim.y) {
    for (int64_t ct = blockIdx.x; ct < col_tiles; ct += gridDim.x) {
      const int64_t a0 = rt * kMiningTile;
      const int64_t b0 = ct * kMiningTile;
      acc_t sum[kMiningMicro][kMiningMicro];
      mining_tile_accumulate<scalar_t, acc_t, VEC, kMiningTile, kMiningTileK, true>(st, x, a0, N, y, b0, M, D, 0, D,
                                                                                   sum);
      mining_tile_store<kMiningTile>(sum, tx, ty, a0, N, b0, M, [&](int64_t i, int64_t j, acc_t s) {
        out[i * M + j] = static_cast<scalar_t>(squared ? s : mining_sqrt(s));
      });
    }
  }
}

// Mining, direct form, step 1: block (anchor tile, split) measures its 32 anchors against the
// candidate tiles [split * tiles_per_split, (split + 1) * tiles_per_split) and leaves, per anchor,
// the split's best positive and negative (squared distance, index) in part_*[split * N + anchor].
template <typename scalar_t, int VEC>
__global__ void mining_select_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ labels, int64_t N,
                                     int64_t D, int64_t splits, int64_t tiles_per_split,
                                     at::opmath_type<scalar_t>* __restrict__ part_pos_value,
                                     int64_t* __restrict__ part_pos_index,
                                     at::opmath_type<scalar_t>* __restrict__ part_neg_value,
                                     int64_t* __restrict__ part_neg_index) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ MiningStages<acc_t, kMiningTile, kMiningTileK> st;
  __shared__ int64_t candidate_labels[kMiningTile];
  const auto [tx, ty] = mining_thread();
  const int64_t tiles = ceil_div(N, kMiningTile);
  for (int64_t anchor_tile = blockIdx.x; anchor_tile < tiles; anchor_tile += gridDim.x) {
    for (int64_t split = blockIdx.y; split < splits; split += gridDim.y) {
      const int64_t a0 = anchor_tile * kMiningTile;
      int64_t anchor[kMiningMicro];
      int64_t anchor_label[kMiningMicro];
      MiningBest<acc_t> best[kMiningMicro];
#pragma unroll
      for (int r = 0; r < kMiningMicro; ++r) {
        anchor[r] = a0 + mining_micro_row<kMiningTile>(ty, r);
        anchor_label[r] = anchor[r] < N ? labels[anchor[r]] : 0;
        best[r].reset();
      }
      const int64_t t_begin = split * tiles_per_split;
      const int64_t t_end = (t_begin + tiles_per_split < tiles) ? t_begin + tiles_per_split : tiles;
      for (int64_t ct = t_begin; ct < t_end; ++ct) {
        const int64_t b0 = ct * kMiningTile;
        for (int e = threadIdx.x; e < kMiningTile; e += blockDim.x) {
          candidate_labels[e] = b0 + e < N ? labels[b0 + e] : 0;
        }
        __syncthreads();  // also orders the labels before their use when D = 0 (no barrier below)
        acc_t sum[kMiningMicro][kMiningMicro];
        mining_tile_accumulate<scalar_t, acc_t, VEC, kMiningTile, kMiningTileK, true>(st, x, a0, N, x, b0, N, D, 0,
                                                                                     D, sum);
#pragma unroll
        for (int r = 0; r < kMiningMicro; ++r) {
#pragma unroll
          for (int c = 0; c < kMiningMicro; ++c) {
            const int cl = mining_micro_row<kMiningTile>(tx, c);
            const int64_t j = b0 + cl;
            if (anchor[r] < N && j < N && j != anchor[r]) {
              best[r].offer(sum[r][c], j, candidate_labels[cl] == anchor_label[r]);
            }
          }
        }
        __syncthreads();  // candidate_labels is rewritten by the next tile
      }
      // The 16 threads of an anchor row are 16 consecutive lanes of one warp.
#pragma unroll
      for (int r = 0; r < kMiningMicro; ++r) {
        for (int offset = kMiningThreadsPerSide / 2; offset > 0; offset /= 2) {
          mining_shuffle_merge(best[r], offset, kMiningThreadsPerSide);
        }
        if (tx == 0 && anchor[r] < N) {
          const int64_t o = split * N + anchor[r];
          part_pos_value[o] = best[r].pos_value;
          part_pos_index[o] = best[r].pos_index;
          part_neg_value[o] = best[r].neg_value;
          part_neg_index[o] = best[r].neg_index;
        }
      }
    }
  }
}

// Mining, direct form, step 2: the warp of (anchor i, class) merges the splits' winners (the order is
// total, so the merge order does not matter) and writes the re-measured winner.
template <typename scalar_t>
__global__ void mining_finalize_kernel(const scalar_t* __restrict__ x, int64_t N, int64_t D, int64_t splits,
                                       const at::opmath_type<scalar_t>* __restrict__ part_pos_value,
                                       const int64_t* __restrict__ part_pos_index,
                                       const at::opmath_type<scalar_t>* __restrict__ part_neg_value,
                                       const int64_t* __restrict__ part_neg_index, scalar_t* __restrict__ d_ap,
                                       scalar_t* __restrict__ d_an, int64_t* __restrict__ idx_p,
                                       int64_t* __restrict__ idx_n) {
  using acc_t = at::opmath_type<scalar_t>;
  const int lane = static_cast<int>(threadIdx.x);
  for (int64_t item = blockIdx.x; item < 2 * N; item += gridDim.x) {
    const int64_t i = item / 2;
    const bool positive = item % 2 == 0;
    MiningBest<acc_t> best;
    best.reset();
    for (int64_t s = lane; s < splits; s += kWarpSize) {
      if (positive) {
        best.offer_positive(part_pos_value[s * N + i], part_pos_index[s * N + i]);
      } else {
        best.offer_negative(part_neg_value[s * N + i], part_neg_index[s * N + i]);
      }
    }
    mining_write_class_winner<scalar_t, acc_t>(x, i, positive, best, D, lane, d_ap, d_an, idx_p, idx_n);
  }
}

// Split-K, step 1 (mining, and pairwise_distance at small N): block (tile pair, k-split) sums the
// chunks [ks * chunks_per_split, ...) of D for its 32 x 32 tile of (row of a, row of b) and stores
// partial[(ks * N + i) * M + j].
template <typename scalar_t, int VEC>
__global__ void mining_splitk_kernel(const scalar_t* __restrict__ a, int64_t N, const scalar_t* __restrict__ b,
                                     int64_t M, int64_t D, int64_t ksplits, int64_t chunks_per_split,
                                     at::opmath_type<scalar_t>* __restrict__ partial) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ MiningStages<acc_t, kMiningTile, kMiningTileK> st;
  const auto [tx, ty] = mining_thread();
  const int64_t col_tiles = ceil_div(M, kMiningTile);
  const int64_t tile_pairs = ceil_div(N, kMiningTile) * col_tiles;
  for (int64_t pair = blockIdx.x; pair < tile_pairs; pair += gridDim.x) {
    for (int64_t ks = blockIdx.y; ks < ksplits; ks += gridDim.y) {
      const int64_t a0 = (pair / col_tiles) * kMiningTile;
      const int64_t b0 = (pair % col_tiles) * kMiningTile;
      const int64_t k_begin = ks * chunks_per_split * kMiningTileK;
      const int64_t k_end = (k_begin + chunks_per_split * kMiningTileK < D) ? k_begin + chunks_per_split * kMiningTileK : D;
      acc_t sum[kMiningMicro][kMiningMicro];
      mining_tile_accumulate<scalar_t, acc_t, VEC, kMiningTile, kMiningTileK, true>(st, a, a0, N, b, b0, M, D,
                                                                                   k_begin, k_end, sum);
      mining_tile_store<kMiningTile>(sum, tx, ty, a0, N, b0, M,
                                     [&](int64_t i, int64_t j, acc_t s) { partial[(ks * N + i) * M + j] = s; });
    }
  }
}

// Mining, split-K, step 2: the warp of (anchor i, class) adds each candidate's k-splits in
// increasing k, picks the winner among the candidates of its class and writes it re-measured.
template <typename scalar_t>
__global__ void mining_splitk_finalize_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ labels,
                                              int64_t N, int64_t D, int64_t ksplits,
                                              const at::opmath_type<scalar_t>* __restrict__ partial,
                                              scalar_t* __restrict__ d_ap, scalar_t* __restrict__ d_an,
                                              int64_t* __restrict__ idx_p, int64_t* __restrict__ idx_n) {
  using acc_t = at::opmath_type<scalar_t>;
  const int lane = static_cast<int>(threadIdx.x);
  for (int64_t item = blockIdx.x; item < 2 * N; item += gridDim.x) {
    const int64_t i = item / 2;
    const bool positive = item % 2 == 0;
    const int64_t li = labels[i];
    MiningBest<acc_t> best;
    best.reset();
    for (int64_t j = lane; j < N; j += kWarpSize) {
      const bool same = labels[j] == li;
      if (j == i || same != positive) continue;
      acc_t s = acc_t(0);
      for (int64_t ks = 0; ks < ksplits; ++ks) s += partial[(ks * N + i) * N + j];
      best.offer(s, j, same);
    }
    mining_write_class_winner<scalar_t, acc_t>(x, i, positive, best, D, lane, d_ap, d_an, idx_p, idx_n);
  }
}

// pairwise_distance, split-K step 2: out[e] = the k-split sums of element e added in increasing k (a
// fixed order), then the square root unless squared. Only used while the tile pairs are fewer than the
// SMs, so there are at most 132 x 1024 elements.
template <typename scalar_t>
__global__ void pairwise_splitk_finalize_kernel(const at::opmath_type<scalar_t>* __restrict__ partial, int64_t numel,
                                                int64_t ksplits, bool squared, scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t e = grid_stride_first(); e < numel; e += grid_stride_step()) {
    acc_t s = acc_t(0);
#pragma unroll 4
    for (int64_t ks = 0; ks < ksplits; ++ks) s += partial[ks * numel + e];
    out[e] = static_cast<scalar_t>(squared ? s : mining_sqrt(s));
  }
}

}  // namespace bdb
