// Every kernel launch in bdb_ext goes through BDB_LAUNCH_KERNEL, and every launch shape comes from
// the config functions below, so the real CUDA build and the CPU emulation build (which defines
// BDB_CUDA_EMULATION and supplies bdb_emu::launch) run the same grids and blocks.
#pragma once

#include <cstdint>

#include "macros.h"

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

// The metric-learning kernels' shapes are in cuda/mining_launch.cuh.

}  // namespace bdb
