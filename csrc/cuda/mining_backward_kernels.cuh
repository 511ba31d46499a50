// Device code of batch_hard_mine's backward. Pair s (s < N: anchor s and its positive idx_p[s];
// s >= N: anchor s - N and its negative idx_n[s - N]) with weight w_s = grad / d contributes
//   +w_s (x_a - x_t) to row a (the anchor) and -w_s (x_a - x_t) = w_s (x_t - x_a) to row t (the target).
// Row j of dx is therefore, in this fixed order,
//   w_p(j) (x_j - x_p(j)) + w_n(j) (x_j - x_n(j)) + sum over the pairs targeting j, by increasing s,
// of w_s (x_j - x_anchor(s)). No atomics on floats; every element of dx is written once.
//
//   1. mining_group_pairs_kernel (one block): the pairs grouped by target row, a stable CSR (order,
//      offsets) in int32, and the hub chunks: a row with L > C pairs (C = pairs_per_chunk) is cut
//      into ceil(L / C) chunks of consecutive pairs (chunk_offsets). It checks every index
//      (device-side assert). One launch instead of about a dozen ATen ops. Beyond
//      kMiningGroupThreads pairs the order comes from mining_rank_pairs_kernel (many blocks) and
//      mining_scatter_pairs_kernel instead of the block's own rank loop (mining_launch.cuh).
//   2. mining_backward_chunks_kernel: block (hub chunk, embedding slice) sums its <= C pairs into a
//      partial row.
//   3. mining_backward_rows_kernel: block (row, embedding slice) adds the row's own two pairs and
//      either its <= C targeting pairs or its hub chunks' partial rows, in chunk order.
// So no block does more than max(C, 4N / C) + 2 terms per element, however many anchors chose a row.
#pragma once

#include "mining_tiles.cuh"

#include <cstdint>

namespace bdb {

// The row that pair s targets, or -1 (no positive: idx_p[s] == s; no negative: idx_n = -1). The
// indices come from the caller: a bad one is a device-side assert, never an out-of-bounds access.
__device__ inline int64_t mining_checked_target(int64_t s, int64_t N, const int64_t* __restrict__ idx_p,
                                                const int64_t* __restrict__ idx_n) {
  if (s < N) {
    const int64_t p = idx_p[s];
    BDB_KERNEL_ASSERT(p >= 0 && p < N, "_batch_hard_mine_backward: idx_p holds an index outside [0, N)");
    return p == s ? -1 : p;
  }
  const int64_t n = idx_n[s - N];
  BDB_KERNEL_ASSERT(n >= -1 && n < N, "_batch_hard_mine_backward: idx_n holds an index outside [-1, N)");
  return n;
}

// d|x_a - x_t| / d x_a = (x_a - x_t) / d, scaled by the pair's incoming gradient (0 for a missing
// pair or d = 0, common/mining.h).
template <typename scalar_t, typename acc_t>
__device__ inline acc_t mining_pair_weight(int64_t s, int64_t N, const scalar_t* __restrict__ grad_ap,
                                           const scalar_t* __restrict__ grad_an, const int64_t* __restrict__ idx_p,
                                           const int64_t* __restrict__ idx_n, const scalar_t* __restrict__ d_ap,
                                           const scalar_t* __restrict__ d_an) {
  if (s < N) {
    return distance_grad_weight<acc_t>(static_cast<acc_t>(grad_ap[s]), static_cast<acc_t>(d_ap[s]),
                                       idx_p[s] != s && idx_p[s] >= 0);
  }
  const int64_t a = s - N;
  return distance_grad_weight<acc_t>(static_cast<acc_t>(grad_an[a]), static_cast<acc_t>(d_an[a]), idx_n[a] >= 0);
}

BDB_INLINE int64_t mining_hub_chunks(int64_t pairs, int64_t pairs_per_chunk) {
  return pairs > pairs_per_chunk ? ceil_div(pairs, pairs_per_chunk) : 0;
}

// Step 1, one block of kMiningGroupThreads threads. fill (N ints) is scratch; offsets and
// chunk_offsets have N + 1 entries, order 2N (only the first offsets[N] are used). index_t is int32_t
// (the host checks 2N < 2^31). With order_in_block it writes order itself (one round of at most
// kMiningGroupThreads pairs is cheap); otherwise it zeroes rank (2N) for mining_rank_pairs_kernel.
template <typename index_t>
__global__ void mining_group_pairs_kernel(const int64_t* __restrict__ idx_p, const int64_t* __restrict__ idx_n,
                                          int64_t N, int64_t pairs_per_chunk, bool order_in_block,
                                          index_t* __restrict__ fill, index_t* __restrict__ offsets,
                                          index_t* __restrict__ chunk_offsets, index_t* __restrict__ order,
                                          index_t* __restrict__ rank) {
  __shared__ index_t round_keys[kMiningGroupThreads];
  __shared__ int64_t scan_pairs[kMiningGroupThreads];
  __shared__ int64_t scan_chunks[kMiningGroupThreads];
  const int t = static_cast<int>(threadIdx.x);
  const int threads = static_cast<int>(blockDim.x);
  // Count the pairs of each row (integer atomics: the counts do not depend on their order).
  for (int64_t r = t; r < N; r += threads) fill[r] = 0;
  __syncthreads();
  for (int64_t s = t; s < 2 * N; s += threads) {
    const int64_t key = mining_checked_target(s, N, idx_p, idx_n);
    if (key >= 0) atomicAdd(&fill[key], 1);
    if (!order_in_block) rank[s] = 0;
  }
  __syncthreads();
  // Exclusive scans of the counts and of the hub chunks: thread t owns a contiguous run of rows.
  const int64_t per_thread = ceil_div(N, threads);
  const int64_t r_begin = t * per_thread < N ? t * per_thread : N;
  const int64_t r_end = r_begin + per_thread < N ? r_begin + per_thread : N;
  int64_t my_pairs = 0, my_chunks = 0;
  for (int64_t r = r_begin; r < r_end; ++r) {
    my_pairs += fill[r];
    my_chunks += mining_hub_chunks(fill[r], pairs_per_chunk);
  }
  scan_pairs[t] = my_pairs;
  scan_chunks[t] = my_chunks;
  __syncthreads();
  for (int offset = 1; offset < threads; offset *= 2) {
    const int64_t add_pairs = t >= offset ? scan_pairs[t - offset] : 0;
    const int64_t add_chunks = t >= offset ? scan_chunks[t - offset] : 0;
    __syncthreads();
    scan_pairs[t] += add_pairs;
    scan_chunks[t] += add_chunks;
    __syncthreads();
  }
  int64_t pair_base = scan_pairs[t] - my_pairs;
  int64_t chunk_base = scan_chunks[t] - my_chunks;
  for (int64_t r = r_begin; r < r_end; ++r) {
    const index_t count = fill[r];
    offsets[r] = static_cast<index_t>(pair_base);
    chunk_offsets[r] = static_cast<index_t>(chunk_base);
    fill[r] = static_cast<index_t>(pair_base);  // from here on: the next free slot of row r
    pair_base += count;
    chunk_base += mining_hub_chunks(count, pairs_per_chunk);
  }
  if (t == threads - 1) {
    offsets[N] = static_cast<index_t>(scan_pairs[t]);
    chunk_offsets[N] = static_cast<index_t>(scan_chunks[t]);
  }
  __syncthreads();
  if (!order_in_block) return;  // block-uniform: mining_rank_pairs_kernel takes over
  // Stable fill, one round of `threads` consecutive pairs at a time: a pair's slot is its row's next
  // free slot plus the number of earlier pairs of the round with the same row.
  for (int64_t base = 0; base < 2 * N; base += threads) {
    const int64_t s = base + t;
    const index_t key = s < 2 * N ? static_cast<index_t>(mining_checked_target(s, N, idx_p, idx_n)) : -1;
    round_keys[t] = key;
    __syncthreads();
    if (key >= 0) {
      index_t rank = 0;
      for (int q = 0; q < t; ++q) rank += round_keys[q] == key ? 1 : 0;
      order[fill[key] + rank] = static_cast<index_t>(s);
    }
    __syncthreads();
    if (key >= 0) atomicAdd(&fill[key], 1);
    __syncthreads();
  }
}

// Step 1b (more than kMiningGroupThreads pairs): block (tile of kMiningRankThreads pairs, slice of
// kMiningRankSlice pairs) adds to rank[s] how many pairs of the slice before s target s's row.
// Integer atomics: the total does not depend on the order of the additions.
template <typename index_t>
__global__ void mining_rank_pairs_kernel(const int64_t* __restrict__ idx_p, const int64_t* __restrict__ idx_n,
                                         int64_t N, index_t* __restrict__ rank) {
  __shared__ index_t slice_keys[kMiningRankSlice];
  const int64_t pairs = 2 * N;
  const int64_t tiles = ceil_div(pairs, kMiningRankThreads);
  const int64_t slices = ceil_div(pairs, kMiningRankSlice);
  // Both loops are block-uniform, so every thread reaches every barrier.
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t tile_begin = tile * kMiningRankThreads;
    const int64_t s = tile_begin + threadIdx.x;
    const index_t key = s < pairs ? static_cast<index_t>(mining_checked_target(s, N, idx_p, idx_n)) : -1;
    for (int64_t slice = blockIdx.y; slice < slices; slice += gridDim.y) {
      const int64_t q0 = slice * kMiningRankSlice;
      if (q0 >= tile_begin + kMiningRankThreads) break;  // no pair of the slice precedes the tile's pairs
      for (int e = threadIdx.x; e < kMiningRankSlice; e += blockDim.x) {
        const int64_t q = q0 + e;
        slice_keys[e] = q < pairs ? static_cast<index_t>(mining_checked_target(q, N, idx_p, idx_n)) : -1;
      }
      __syncthreads();
      if (key >= 0) {
        const int64_t end = (s - q0 < kMiningRankSlice) ? s - q0 : kMiningRankSlice;
        index_t count = 0;
        for (int64_t e = 0; e < end; ++e) count += slice_keys[e] == key ? 1 : 0;
        if (count > 0) atomicAdd(&rank[s], count);
      }
      __syncthreads();  // slice_keys is rewritten by the next slice
    }
  }
}

// Step 1c: pair s goes to its row's slot offsets[row] + rank[s].
template <typename index_t>
__global__ void mining_scatter_pairs_kernel(const int64_t* __restrict__ idx_p, const int64_t* __restrict__ idx_n,
                                            int64_t N, const index_t* __restrict__ offsets,
                                            const index_t* __restrict__ rank, index_t* __restrict__ order) {
  for (int64_t s = grid_stride_first(); s < 2 * N; s += grid_stride_step()) {
    const int64_t key = mining_checked_target(s, N, idx_p, idx_n);
    if (key >= 0) order[offsets[key] + rank[s]] = static_cast<index_t>(s);
  }
}

// The row whose hub chunks include chunk k: chunk_offsets[row] <= k < chunk_offsets[row + 1].
__device__ inline int64_t mining_chunk_row(const int32_t* __restrict__ chunk_offsets, int64_t N, int64_t k) {
  int64_t lo = 0, hi = N;  // invariant: chunk_offsets[lo] <= k < chunk_offsets[hi]
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (chunk_offsets[mid] <= k) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// Step 2: block (hub chunk k, embedding slice): partial[k, d] = sum over the chunk's pairs s, in
// increasing s, of w_s (x_j - x_anchor(s))[d].
template <typename scalar_t>
__global__ void mining_backward_chunks_kernel(const scalar_t* __restrict__ grad_ap,
                                              const scalar_t* __restrict__ grad_an, const scalar_t* __restrict__ x,
                                              const int64_t* __restrict__ idx_p, const int64_t* __restrict__ idx_n,
                                              const scalar_t* __restrict__ d_ap, const scalar_t* __restrict__ d_an,
                                              const int32_t* __restrict__ order, const int32_t* __restrict__ offsets,
                                              const int32_t* __restrict__ chunk_offsets, int64_t N, int64_t D,
                                              int64_t pairs_per_chunk, int64_t max_chunks,
                                              at::opmath_type<scalar_t>* __restrict__ partial) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t chunks = chunk_offsets[N];
  BDB_KERNEL_ASSERT(chunks <= max_chunks, "_batch_hard_mine_backward: more hub chunks than the workspace holds");
  for (int64_t k = blockIdx.x; k < chunks; k += gridDim.x) {
    const int64_t j = mining_chunk_row(chunk_offsets, N, k);
    const int64_t e_begin = offsets[j] + (k - chunk_offsets[j]) * pairs_per_chunk;
    const int64_t e_end = e_begin + pairs_per_chunk < offsets[j + 1] ? e_begin + pairs_per_chunk : offsets[j + 1];
    for (int64_t d = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; d < D;
         d += static_cast<int64_t>(gridDim.y) * blockDim.x) {
      const acc_t xj = static_cast<acc_t>(x[j * D + d]);
      acc_t acc = acc_t(0);
      for (int64_t e = e_begin; e < e_end; ++e) {
        const int64_t s = order[e];
        const acc_t w = mining_pair_weight<scalar_t, acc_t>(s, N, grad_ap, grad_an, idx_p, idx_n, d_ap, d_an);
        if (w != acc_t(0)) acc += w * (xj - static_cast<acc_t>(x[(s % N) * D + d]));
      }
      partial[k * D + d] = acc;
    }
  }
}

// Step 3: block (row j, embedding slice) writes dx[j, slice].
template <typename scalar_t>
__global__ void mining_backward_rows_kernel(const scalar_t* __restrict__ grad_ap, const scalar_t* __restrict__ grad_an,
                                            const scalar_t* __restrict__ x, const int64_t* __restrict__ idx_p,
                                            const int64_t* __restrict__ idx_n, const scalar_t* __restrict__ d_ap,
                                            const scalar_t* __restrict__ d_an, const int32_t* __restrict__ order,
                                            const int32_t* __restrict__ offsets,
                                            const int32_t* __restrict__ chunk_offsets, int64_t N, int64_t D,
                                            int64_t pairs_per_chunk,
                                            const at::opmath_type<scalar_t>* __restrict__ partial,
                                            scalar_t* __restrict__ dx) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t j = blockIdx.x; j < N; j += gridDim.x) {
    const acc_t wp = mining_pair_weight<scalar_t, acc_t>(j, N, grad_ap, grad_an, idx_p, idx_n, d_ap, d_an);
    const acc_t wn = mining_pair_weight<scalar_t, acc_t>(N + j, N, grad_ap, grad_an, idx_p, idx_n, d_ap, d_an);
    const int64_t p = idx_p[j];
    const int64_t n = idx_n[j];
    const int64_t e_begin = offsets[j];
    const int64_t e_end = offsets[j + 1];
    const bool hub = e_end - e_begin > pairs_per_chunk;
    for (int64_t d = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; d < D;
         d += static_cast<int64_t>(gridDim.y) * blockDim.x) {
      const acc_t xj = static_cast<acc_t>(x[j * D + d]);
      acc_t acc = acc_t(0);
      if (wp != acc_t(0)) acc += wp * (xj - static_cast<acc_t>(x[p * D + d]));
      if (wn != acc_t(0)) acc += wn * (xj - static_cast<acc_t>(x[n * D + d]));
      if (hub) {
        for (int64_t k = chunk_offsets[j]; k < chunk_offsets[j + 1]; ++k) acc += partial[k * D + d];
      } else {
        for (int64_t e = e_begin; e < e_end; ++e) {
          const int64_t s = order[e];
          const acc_t w = mining_pair_weight<scalar_t, acc_t>(s, N, grad_ap, grad_an, idx_p, idx_n, d_ap, d_an);
          if (w != acc_t(0)) acc += w * (xj - static_cast<acc_t>(x[(s % N) * D + d]));
        }
      }
      dx[j * D + d] = static_cast<scalar_t>(acc);
    }
  }
}

}  // namespace bdb
