// Every kernel launch in bdb_ext goes through BDB_LAUNCH_KERNEL, and every launch shape comes from
// the config functions below, so the real CUDA build and the CPU emulation build (which defines
// BDB_CUDA_EMULATION and supplies bdb_emu::launch) run the same grids and blocks.
#pragma once

#include <cstdint>

#include "../common/macros.h"

#if defined(__CUDACC__)
// `kernel` must be a plain name (bind a template instantiation to a local function pointer first).
#define BDB_LAUNCH_KERNEL(kernel, grid, block, stream, ...) \
  kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#elif defined(BDB_CUDA_EMULATION)
#define BDB_LAUNCH_KERNEL(kernel, grid, block, stream, ...) \
  ::bdb_emu::launch((kernel), (grid), (block), (stream), __VA_ARGS__)
#endif

namespace bdb {

constexpr int kWarpSize = 32;
constexpr int kElementwiseThreads = 256;
// Grid-stride loops cap the grid here; 64-bit indices inside the kernels cover any tensor size.
constexpr int64_t kMaxElementwiseBlocks = 65535LL * 8;

struct LaunchShape {
  int64_t blocks;
  int threads;
};

BDB_INLINE int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A grid dimension for `wanted` blocks: at least 1 (empty work still launches a valid grid) and at
// most `limit` (kernels loop grid-stride over the rest).
inline int64_t grid_blocks(int64_t wanted, int64_t limit = kMaxElementwiseBlocks) {
  return wanted < 1 ? 1 : (wanted > limit ? limit : wanted);
}

// Elementwise kernels: each thread handles `vec` consecutive elements per step.
inline LaunchShape elementwise_launch(int64_t numel, int vec) {
  const int64_t work = ceil_div(numel, vec);
  return {grid_blocks(ceil_div(work, kElementwiseThreads)), kElementwiseThreads};
}

// Plane pooling (NCHW): a group of `group` lanes reduces one H*W plane; `group` is a power of two
// no larger than a warp, chosen so lanes are not idle on small maps.
struct PlanePoolShape {
  int64_t blocks;
  int threads;
  int group;
};

inline PlanePoolShape plane_pool_launch(int64_t planes, int64_t vectors_per_plane) {
  int group = 1;
  while (group < kWarpSize && group < vectors_per_plane) group *= 2;
  const int threads = 256;
  const int64_t planes_per_block = threads / group;
  return {grid_blocks(ceil_div(planes, planes_per_block)), threads, group};
}

// Channel pooling (channels_last): one thread per (n, channel vector), blocks tile the channels.
struct ChannelPoolShape {
  int64_t blocks_x;  // over channel vectors
  int64_t blocks_y;  // over the batch
  int threads;
};

inline ChannelPoolShape channel_pool_launch(int64_t channel_vectors, int64_t batch) {
  int threads = 256;
  while (threads > 32 && threads / 2 >= channel_vectors) threads /= 2;
  return {ceil_div(channel_vectors, threads), batch, threads};
}

// Batch-hard mining and pairwise distances (mining_kernels.cuh): 16 x 16 threads, each measuring a
// 2 x 2 block of (anchor, candidate) pairs, so a block covers a 32 x 32 tile of pairs and stages
// the embeddings through shared memory kMiningTileK elements at a time.
constexpr int kMiningTile = 32;
constexpr int kMiningTileK = 16;
constexpr int kMiningThreadsPerSide = 16;
constexpr int kMiningMicro = kMiningTile / kMiningThreadsPerSide;
constexpr int kMiningThreads = kMiningThreadsPerSide * kMiningThreadsPerSide;
// Candidate tiles are split across blocks when there are few anchor tiles, so small batches still
// fill the GPU; each split leaves one partial winner per anchor (O(splits * N) memory, never N x N).
constexpr int64_t kMiningTargetBlocks = 512;
constexpr int64_t kMiningMaxSplits = 32;
constexpr int64_t kMaxGridY = 65535;

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

// The finalize step of mining: one warp per anchor (merge the splits' winners, then re-measure the
// two chosen pairs in the direct form).
constexpr int kMiningFinalizeThreads = 256;

inline LaunchShape mining_finalize_launch(int64_t N) {
  const int64_t anchors_per_block = kMiningFinalizeThreads / kWarpSize;
  return {grid_blocks(ceil_div(N, anchors_per_block)), kMiningFinalizeThreads};
}

// Mining backward: one block per output row at a time, threads along the embedding.
inline LaunchShape mining_backward_launch(int64_t N, int64_t D) {
  int threads = 256;
  while (threads > kWarpSize && threads / 2 >= D) threads /= 2;
  return {grid_blocks(N), threads};
}

// pairwise_distance: one block per 32 x 32 output tile (grid x over columns, y over rows, both
// grid-stride).
struct PairwiseShape {
  int64_t blocks_x;
  int64_t blocks_y;
  int threads;
};

inline PairwiseShape pairwise_launch(int64_t N, int64_t M) {
  return {grid_blocks(ceil_div(M, kMiningTile)), grid_blocks(ceil_div(N, kMiningTile), kMaxGridY),
          kMiningThreads};
}

}  // namespace bdb
