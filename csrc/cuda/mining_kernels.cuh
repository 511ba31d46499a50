// Device code of pairwise_distance and batch_hard_mine: kernels over raw pointers, no ATen tensors,
// so the CPU emulation harness and the standalone sanitizer driver can include this header as it is.
//
// Distances are measured in the direct form sum((a - b)^2) throughout (fp32 FMA, no tensor cores:
// the accuracy target and the emulator rule out TF32/FP16 MMA here), in 32 x 32 tiles of pairs
// staged through static shared memory. Each thread keeps a 2 x 2 block of pairs and sums every
// kMiningTileK-element chunk separately before adding it to its running sum, which bounds the
// rounding by about (D / 16 + 16) ulps instead of D ulps.
#pragma once

#include "device_prelude.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "../common/mining.h"

namespace bdb {

template <typename acc_t>
struct MiningTileStage {
  acc_t a[kMiningTileK][kMiningTile + 1];  // +1: no bank conflicts on the transposed stores
  acc_t b[kMiningTileK][kMiningTile + 1];
};

// Stage rows [a0, a0 + 32) of `a` and [b0, b0 + 32) of `b`, columns [k0, k0 + 16), transposed
// (rows past the end and columns past D read as 0). Every thread of the block calls this.
template <typename scalar_t, typename acc_t>
__device__ inline void mining_stage_load(MiningTileStage<acc_t>& st, const scalar_t* __restrict__ a, int64_t a0,
                                         int64_t a_rows, const scalar_t* __restrict__ b, int64_t b0,
                                         int64_t b_rows, int64_t D, int64_t k0) {
  constexpr int kElems = kMiningTile * kMiningTileK;
  for (int e = threadIdx.x; e < kElems; e += blockDim.x) {
    const int row = e / kMiningTileK;
    const int col = e % kMiningTileK;
    const int64_t k = k0 + col;
    const int64_t ra = a0 + row;
    const int64_t rb = b0 + row;
    st.a[col][row] = (ra < a_rows && k < D) ? static_cast<acc_t>(a[ra * D + k]) : acc_t(0);
    st.b[col][row] = (rb < b_rows && k < D) ? static_cast<acc_t>(b[rb * D + k]) : acc_t(0);
  }
}

// Squared distances of the thread's 2 x 2 pairs: anchors a0 + ty + 16 r, candidates b0 + tx + 16 c
// (strided so a warp reads 16 consecutive candidates and 2 broadcast anchors per step). Contains
// __syncthreads: every thread of the block must call it with the same arguments.
template <typename scalar_t, typename acc_t>
__device__ inline void mining_tile_sums(MiningTileStage<acc_t>& st, const scalar_t* __restrict__ a, int64_t a0,
                                        int64_t a_rows, const scalar_t* __restrict__ b, int64_t b0,
                                        int64_t b_rows, int64_t D, acc_t (&sum)[kMiningMicro][kMiningMicro]) {
  const int tx = threadIdx.x % kMiningThreadsPerSide;
  const int ty = threadIdx.x / kMiningThreadsPerSide;
#pragma unroll
  for (int r = 0; r < kMiningMicro; ++r) {
#pragma unroll
    for (int c = 0; c < kMiningMicro; ++c) sum[r][c] = acc_t(0);
  }
  for (int64_t k0 = 0; k0 < D; k0 += kMiningTileK) {
    mining_stage_load(st, a, a0, a_rows, b, b0, b_rows, D, k0);
    __syncthreads();
    acc_t chunk[kMiningMicro][kMiningMicro];
#pragma unroll
    for (int r = 0; r < kMiningMicro; ++r) {
#pragma unroll
      for (int c = 0; c < kMiningMicro; ++c) chunk[r][c] = acc_t(0);
    }
#pragma unroll
    for (int kk = 0; kk < kMiningTileK; ++kk) {
      acc_t av[kMiningMicro];
      acc_t bv[kMiningMicro];
#pragma unroll
      for (int r = 0; r < kMiningMicro; ++r) av[r] = st.a[kk][ty + kMiningThreadsPerSide * r];
#pragma unroll
      for (int c = 0; c < kMiningMicro; ++c) bv[c] = st.b[kk][tx + kMiningThreadsPerSide * c];
#pragma unroll
      for (int r = 0; r < kMiningMicro; ++r) {
#pragma unroll
        for (int c = 0; c < kMiningMicro; ++c) {
          const acc_t diff = av[r] - bv[c];
          chunk[r][c] += diff * diff;
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kMiningMicro; ++r) {
#pragma unroll
      for (int c = 0; c < kMiningMicro; ++c) sum[r][c] += chunk[r][c];
    }
    __syncthreads();
  }
}

template <typename acc_t>
BDB_INLINE acc_t mining_sqrt(acc_t v) {
  return std::sqrt(v);
}

// pairwise_distance: out[i, j] = |x_i - y_j| (or its square), one 32 x 32 tile per block step.
template <typename scalar_t>
__global__ void pairwise_distance_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                         scalar_t* __restrict__ out, int64_t N, int64_t M, int64_t D,
                                         bool squared) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ MiningTileStage<acc_t> st;
  const int tx = threadIdx.x % kMiningThreadsPerSide;
  const int ty = threadIdx.x / kMiningThreadsPerSide;
  const int64_t row_tiles = ceil_div(N, kMiningTile);
  const int64_t col_tiles = ceil_div(M, kMiningTile);
  // Both loops are block-uniform, so every thread reaches every barrier in mining_tile_sums.
  for (int64_t rt = blockIdx.y; rt < row_tiles; rt += gridDim.y) {
    for (int64_t ct = blockIdx.x; ct < col_tiles; ct += gridDim.x) {
      const int64_t a0 = rt * kMiningTile;
      const int64_t b0 = ct * kMiningTile;
      acc_t sum[kMiningMicro][kMiningMicro];
      mining_tile_sums(st, x, a0, N, y, b0, M, D, sum);
#pragma unroll
      for (int r = 0; r < kMiningMicro; ++r) {
#pragma unroll
        for (int c = 0; c < kMiningMicro; ++c) {
          const int64_t i = a0 + ty + kMiningThreadsPerSide * r;
          const int64_t j = b0 + tx + kMiningThreadsPerSide * c;
          if (i < N && j < M) out[i * M + j] = static_cast<scalar_t>(squared ? sum[r][c] : mining_sqrt(sum[r][c]));
        }
      }
    }
  }
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

// Mining, step 1: block (anchor tile, split) measures its 32 anchors against the candidate tiles
// [split * tiles_per_split, (split + 1) * tiles_per_split) and leaves, per anchor, the split's best
// positive and negative (squared distance, index) in part_*[split * N + anchor]. No N x N storage.
template <typename scalar_t>
__global__ void mining_select_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ labels, int64_t N,
                                     int64_t D, int64_t splits, int64_t tiles_per_split,
                                     at::opmath_type<scalar_t>* __restrict__ part_pos_value,
                                     int64_t* __restrict__ part_pos_index,
                                     at::opmath_type<scalar_t>* __restrict__ part_neg_value,
                                     int64_t* __restrict__ part_neg_index) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ MiningTileStage<acc_t> st;
  __shared__ int64_t candidate_labels[kMiningTile];
  const int tx = threadIdx.x % kMiningThreadsPerSide;
  const int ty = threadIdx.x / kMiningThreadsPerSide;
  const int64_t tiles = ceil_div(N, kMiningTile);
  for (int64_t anchor_tile = blockIdx.x; anchor_tile < tiles; anchor_tile += gridDim.x) {
    for (int64_t split = blockIdx.y; split < splits; split += gridDim.y) {
      const int64_t a0 = anchor_tile * kMiningTile;
      int64_t anchor[kMiningMicro];
      int64_t anchor_label[kMiningMicro];
      MiningBest<acc_t> best[kMiningMicro];
#pragma unroll
      for (int r = 0; r < kMiningMicro; ++r) {
        anchor[r] = a0 + ty + kMiningThreadsPerSide * r;
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
        __syncthreads();
        acc_t sum[kMiningMicro][kMiningMicro];
        mining_tile_sums(st, x, a0, N, x, b0, N, D, sum);
#pragma unroll
        for (int r = 0; r < kMiningMicro; ++r) {
#pragma unroll
          for (int c = 0; c < kMiningMicro; ++c) {
            const int cl = tx + kMiningThreadsPerSide * c;
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

// sum((x_i - x_j)^2) by one warp: lane-strided partial sums, then a fixed xor tree, so every lane
// ends with the same, deterministic value. j < 0 gives 0. All 32 lanes must call it.
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

// Mining, step 2: one warp per anchor merges the splits' winners (the order is total, so the merge
// order does not matter), then re-measures the two chosen pairs in the direct form for the outputs.
template <typename scalar_t>
__global__ void mining_finalize_kernel(const scalar_t* __restrict__ x, int64_t N, int64_t D, int64_t splits,
                                       const at::opmath_type<scalar_t>* __restrict__ part_pos_value,
                                       const int64_t* __restrict__ part_pos_index,
                                       const at::opmath_type<scalar_t>* __restrict__ part_neg_value,
                                       const int64_t* __restrict__ part_neg_index, scalar_t* __restrict__ d_ap,
                                       scalar_t* __restrict__ d_an, int64_t* __restrict__ idx_p,
                                       int64_t* __restrict__ idx_n) {
  using acc_t = at::opmath_type<scalar_t>;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t warps = blockDim.x / kWarpSize;
  const int64_t warp = threadIdx.x / kWarpSize;
  // Block-uniform loop bound: every lane reaches every shuffle, valid anchor or not.
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * warps; base < N; base += static_cast<int64_t>(gridDim.x) * warps) {
    const int64_t i = base + warp;
    const bool valid = i < N;
    MiningBest<acc_t> best;
    best.reset();
    if (valid) {
      for (int64_t s = lane; s < splits; s += kWarpSize) {
        best.offer_positive(part_pos_value[s * N + i], part_pos_index[s * N + i]);
        best.offer_negative(part_neg_value[s * N + i], part_neg_index[s * N + i]);
      }
    }
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) mining_shuffle_merge(best, offset, kWarpSize);
    const int64_t p = valid ? best.pos_index : -1;
    const int64_t n = valid ? best.neg_index : -1;
    const acc_t sp = warp_squared_distance<scalar_t, acc_t>(x, valid ? i : -1, p, D, lane);
    const acc_t sn = warp_squared_distance<scalar_t, acc_t>(x, valid ? i : -1, n, D, lane);
    if (valid && lane == 0) {
      d_ap[i] = has_pair(p) ? static_cast<scalar_t>(mining_sqrt(sp)) : scalar_t(0);
      idx_p[i] = has_pair(p) ? p : i;
      d_an[i] = has_pair(n) ? static_cast<scalar_t>(mining_sqrt(sn))
                            : static_cast<scalar_t>(std::numeric_limits<acc_t>::infinity());
      idx_n[i] = n;
    }
  }
}

// Mining backward: row j of dx, by one block, threads along the embedding, in a fixed order:
//   w_p(j) (x_j - x_p(j)) + w_n(j) (x_j - x_n(j)) + sum over the anchors that chose j of w (x_j - x_a)
// `order`/`offsets` list, per target row, the chosen pairs s (s < N: anchor s's positive, else
// anchor s - N's negative) in increasing s: a CSR built by a stable sort on the host side. No
// atomics; every element of dx is written once.
template <typename scalar_t>
__global__ void mining_backward_kernel(const scalar_t* __restrict__ grad_ap, const scalar_t* __restrict__ grad_an,
                                       const scalar_t* __restrict__ x, const int64_t* __restrict__ idx_p,
                                       const int64_t* __restrict__ idx_n, const scalar_t* __restrict__ d_ap,
                                       const scalar_t* __restrict__ d_an, const int64_t* __restrict__ order,
                                       const int64_t* __restrict__ offsets, scalar_t* __restrict__ dx, int64_t N,
                                       int64_t D) {
  using acc_t = at::opmath_type<scalar_t>;
  // Captured by value: a by-reference capture takes the address of the kernel's parameters.
  auto weight = [=](int64_t s) -> acc_t {
    if (s < N) {
      return distance_grad_weight<acc_t>(static_cast<acc_t>(grad_ap[s]), static_cast<acc_t>(d_ap[s]),
                                         idx_p[s] != s && idx_p[s] >= 0);
    }
    const int64_t a = s - N;
    return distance_grad_weight<acc_t>(static_cast<acc_t>(grad_an[a]), static_cast<acc_t>(d_an[a]), idx_n[a] >= 0);
  };
  for (int64_t j = blockIdx.x; j < N; j += gridDim.x) {
    const acc_t wp = weight(j);
    const acc_t wn = weight(N + j);
    const int64_t p = idx_p[j];
    const int64_t n = idx_n[j];
    const int64_t e_begin = offsets[j];
    const int64_t e_end = offsets[j + 1];
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
      const acc_t xj = static_cast<acc_t>(x[j * D + d]);
      acc_t acc = acc_t(0);
      if (wp != acc_t(0)) acc += wp * (xj - static_cast<acc_t>(x[p * D + d]));
      if (wn != acc_t(0)) acc += wn * (xj - static_cast<acc_t>(x[n * D + d]));
      for (int64_t e = e_begin; e < e_end; ++e) {
        const int64_t s = order[e];
        const acc_t w = weight(s);
        if (w != acc_t(0)) acc += w * (xj - static_cast<acc_t>(x[(s % N) * D + d]));
      }
      dx[j * D + d] = static_cast<scalar_t>(acc);
    }
  }
}

}  // namespace bdb
