// Launch shapes of the metric-learning kernels (pairwise_distance, batch_hard_mine and its backward):
// the host code (mining_cuda.cu), the emulated library and the sanitizer driver all take their grids
// and blocks from these functions, so every build runs the same shapes. Plain C++ (no device code).
//
// The shapes are sized for a 132-SM H100/H200: every kernel whose work grows with N offers at least
// about one resident block per SM at N = 128 (docs/performance.md has the model and the
// numbers). The exceptions by design are the "latency kernels" of the model: the finalizers (2N
// single-warp items), the backward's pair grouping, a single block over the 2N chosen pairs (it
// replaces about a dozen ATen launches; it orders the pairs itself only up to 1024 of them), and the
// small kernels whose work is bounded by construction (rank, scatter, pairwise split-K finalize).
#pragma once

#include <cstdint>

#include "launch.h"

namespace bdb {

constexpr int kMiningThreadsPerSide = 16;
constexpr int kMiningThreads = kMiningThreadsPerSide * kMiningThreadsPerSide;
// SMs of the GPUs the shapes are sized for, and the blocks that keep two per SM busy.
constexpr int64_t kMiningTargetSMs = 132;
constexpr int64_t kMiningFillBlocks = 2 * kMiningTargetSMs;
// Shared-memory rows are padded by 4 elements: 16-byte aligned rows for vector reads, and the
// transposed stores of a warp spread over the banks.
constexpr int kMiningSmemPad = 4;

// Direct-form tiles (small and medium N, float64 at any N): a 16 x 16 block measures a 32 x 32 tile
// of (anchor, candidate) pairs, 2 x 2 per thread, over 16-element chunks of the embedding.
constexpr int kMiningTile = 32;
constexpr int kMiningTileK = 16;
constexpr int kMiningMicro = kMiningTile / kMiningThreadsPerSide;

// GEMM-form tiles (N >= kMiningGemmMinN, fp32/fp16/bf16): a 16 x 16 block computes a 128 x 128 tile
// of dot products, 8 x 8 per thread (register-blocked: 4 vector shared loads feed 64 FMAs), over
// 8-element chunks.
constexpr int kMiningGemmTile = 128;
constexpr int kMiningGemmTileK = 8;
constexpr int kMiningGemmMicro = kMiningGemmTile / kMiningThreadsPerSide;
constexpr int64_t kMiningGemmMinN = 2048;

// The widest 16-byte vector of `elem_size`-byte elements that divides D; 1 when the rows are not
// 16-byte aligned (the host passes whether the data pointer is).
inline int mining_vector_width(int64_t D, int elem_size, bool aligned16) {
  const int vec = 16 / elem_size;
  return (aligned16 && D % vec == 0) ? vec : 1;
}

// Direct form, split over candidates: block (anchor tile, split) measures its anchors against the
// candidate tiles [split * tiles_per_split, ...) over all of D and leaves one partial winner per
// (split, anchor): O(splits * N) memory, splits <= kMiningMaxSplits.
constexpr int64_t kMiningTargetBlocks = 512;
constexpr int64_t kMiningMaxSplits = 32;

struct MiningSelectShape {
  int64_t anchor_blocks;    // grid x (grid-stride over anchor tiles)
  int64_t splits;           // grid y: candidate tiles are divided into this many contiguous runs
  int64_t tiles_per_split;  // candidate tiles per run
  int threads;
};

inline MiningSelectShape mining_select_launch(int64_t N) {
  const int64_t tiles = ceil_div(N, kMiningTile);
  int64_t splits = ceil_div(kMiningTargetBlocks, tiles < 1 ? 1 : tiles);
  const int64_t max_splits = tiles < kMiningMaxSplits ? tiles : kMiningMaxSplits;
  if (splits > max_splits) splits = max_splits;
  if (splits < 1) splits = 1;
  int64_t per_split = ceil_div(tiles, splits);
  if (per_split < 1) per_split = 1;
  splits = ceil_div(tiles, per_split);
  if (splits < 1) splits = 1;
  return {grid_blocks(tiles), splits, per_split, kMiningThreads};
}

// Direct form, split over the embedding (split-K) when the tile pairs alone cannot fill the GPU
// (N = 128: 4 x 4 tile pairs): block (tile pair, k-split) sums its chunks of D for a 32 x 32 tile and
// stores the partial sums; the finalize adds the k-splits of each pair in increasing k (a fixed
// order, so the result is bitwise the same on every run). The partials take ksplits * N * N values,
// which split-K bounds by (kMiningFillBlocks + tile pairs) * 32 * 32 (under 1.6 MB in fp32): it is
// used only while the tile pairs are fewer than kMiningTargetSMs.
struct MiningSplitKShape {
  int64_t tile_pairs;        // grid x: row tile * column tiles + column tile
  int64_t ksplits;           // grid y; 1 = no split-K (use mining_select_launch instead)
  int64_t chunks_per_split;  // kMiningTileK-element chunks per k-split
  int threads;
};

// Rows of a (N) against rows of b (M): pairwise_distance takes split-K on the same rule.
inline MiningSplitKShape mining_splitk_launch(int64_t N, int64_t M, int64_t D) {
  const int64_t pairs = ceil_div(N, kMiningTile) * ceil_div(M, kMiningTile);
  const int64_t chunks = ceil_div(D, kMiningTileK);
  if (pairs < 1 || pairs >= kMiningTargetSMs || chunks < 2) return {grid_blocks(pairs), 1, chunks, kMiningThreads};
  int64_t ksplits = ceil_div(kMiningFillBlocks, pairs);
  if (ksplits > chunks) ksplits = chunks;
  const int64_t per_split = ceil_div(chunks, ksplits);
  ksplits = ceil_div(chunks, per_split);
  return {pairs, ksplits, per_split, kMiningThreads};
}

inline MiningSplitKShape mining_splitk_launch(int64_t N, int64_t D) { return mining_splitk_launch(N, N, D); }

// GEMM form: block (anchor tile, candidate tile) of 128 x 128; one bound record per (candidate tile,
// anchor): O(N * N / 128) memory (32 N at N = 4096).
struct MiningGemmShape {
  int64_t tiles;  // candidate tiles = records per anchor
  int64_t blocks_x;
  int64_t blocks_y;
  int threads;
};

inline MiningGemmShape mining_gemm_launch(int64_t N) {
  const int64_t tiles = ceil_div(N, kMiningGemmTile);
  return {tiles, grid_blocks(tiles), grid_blocks(tiles, kMaxGridY), kMiningThreads};
}

// Squared row norms for the GEMM form: one warp per row.
constexpr int kMiningNormThreads = 128;

inline LaunchShape mining_norms_launch(int64_t N) {
  return {grid_blocks(ceil_div(N, kMiningNormThreads / kWarpSize)), kMiningNormThreads};
}

// The finalize kernels: one warp (one block) per (anchor, class): block 2 i picks anchor i's hardest
// positive, block 2 i + 1 its hardest negative, and re-measures it in the direct form. 2N blocks:
// 256 at N = 128.
inline LaunchShape mining_finalize_launch(int64_t N) { return {grid_blocks(2 * N), kWarpSize}; }

// Backward. The 2N chosen pairs are grouped by target row (a CSR) by one block; a row with more than
// `pairs_per_chunk` pairs (a hub: a negative chosen by many anchors) is summed in chunks of that
// many pairs by separate blocks, whose partial rows the row's block then adds in chunk order. The
// chunk size near sqrt(2N) balances the chunk blocks against the row's merge: no block does more
// than max(pairs_per_chunk, 4N / pairs_per_chunk) + 2 terms per embedding element.
constexpr int kMiningGroupThreads = 1024;
constexpr int kMiningBackwardThreads = 256;

// The stable order of the pairs within a row. Up to kMiningGroupThreads pairs (N <= 512) the grouping
// block ranks them itself, in one round. Beyond, its one-SM rank loop would cost 2N x 512 compares
// (about 33 us at N = 2048), so the rank of pair s (how many earlier pairs share its row) is counted
// by blocks over (256 pairs, slice of 1024 earlier pairs) with integer atomics (their sum does not
// depend on the order), and a scatter writes the order: two more launches, 2N^2 / 2 compares spread
// over the GPU.
constexpr int kMiningRankThreads = 256;
constexpr int kMiningRankSlice = 1024;

inline bool mining_group_ranks_in_block(int64_t N) { return 2 * N <= kMiningGroupThreads; }

struct MiningRankShape {
  int64_t blocks_x;  // tiles of kMiningRankThreads pairs (grid-stride beyond)
  int64_t blocks_y;  // slices of kMiningRankSlice earlier pairs (grid-stride beyond kMaxGridY)
  int threads;
};

inline MiningRankShape mining_rank_launch(int64_t N) {
  return {grid_blocks(ceil_div(2 * N, kMiningRankThreads)), grid_blocks(ceil_div(2 * N, kMiningRankSlice), kMaxGridY),
          kMiningRankThreads};
}

inline LaunchShape mining_scatter_launch(int64_t N) { return elementwise_launch(2 * N, 1); }

struct MiningBackwardShape {
  int64_t pairs_per_chunk;
  int64_t max_chunks;  // an upper bound on the hub chunks: sum over rows with L > c of ceil(L / c) <= 4N / c
  int64_t d_blocks;    // grid y of the chunk and row kernels: blocks along the embedding
  int threads;
};

inline MiningBackwardShape mining_backward_launch(int64_t N, int64_t D) {
  int64_t chunk = 16;
  while (chunk < 256 && chunk * chunk < 2 * N) chunk *= 2;
  return {chunk, ceil_div(4 * N, chunk), grid_blocks(ceil_div(D, kMiningBackwardThreads), kMaxGridY),
          kMiningBackwardThreads};
}

// pairwise_distance: one block per 32 x 32 output tile (grid x over columns, y over rows, both
// grid-stride).
struct PairwiseShape {
  int64_t blocks_x;
  int64_t blocks_y;
  int threads;
};

inline PairwiseShape pairwise_launch(int64_t N, int64_t M) {
  return {grid_blocks(ceil_div(M, kMiningTile)), grid_blocks(ceil_div(N, kMiningTile), kMaxGridY), kMiningThreads};
}

}  // namespace bdb
