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
// The drop kernels are memory-bound: their launch shapes assume this many resident blocks per SM
// (at most 40 registers per thread for 256-thread blocks), enough 16-byte accesses in flight to
// cover HBM latency (benchmarks/perf_model.py, docs/performance.md). __launch_bounds__ holds the
// compiler to it; scripts/audit_cuda_binary.py checks the result has no spills.
// drop_pool's backward has no __launch_bounds__: a 40-register cap makes it spill around the argmax
// device-side assert (and double division), and the model needs only 5 blocks (48 registers) of its
// 16-byte stores.
constexpr int kDropBlocksPerSm = 6;
// Grid-stride loops cap the grid here; 64-bit indices inside the kernels cover any tensor size.
constexpr int64_t kMaxElementwiseBlocks = 65535LL * 8;
// The largest grid.y (and grid.z) a launch may use.
constexpr int64_t kMaxGridY = 65535;

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
constexpr int kPlanePoolThreads = 256;

struct PlanePoolShape {
  int64_t blocks;
  int threads;
  int group;
};

inline PlanePoolShape plane_pool_launch(int64_t planes, int64_t vectors_per_plane) {
  int group = 1;
  while (group < kWarpSize && group < vectors_per_plane) group *= 2;
  const int threads = kPlanePoolThreads;
  const int64_t planes_per_block = threads / group;
  return {grid_blocks(ceil_div(planes, planes_per_block)), threads, group};
}

// Channel pooling (channels_last): blocks of threads_x channel vectors x threads_y position slices
// (kChannelPoolThreads threads at most), over a grid of channel tiles x samples. A warp reads 32
// neighbouring channel vectors of one position when there are that many; the rest of the block
// splits the H x W positions, so a sample's walk is shared by threads_y threads and the grid has
// N x channel tiles blocks instead of N x (channel vectors / 256).
constexpr int kChannelPoolThreads = 256;

struct ChannelPoolShape {
  int64_t blocks_x;  // over channel tiles
  int64_t blocks_y;  // over the batch (grid-stride beyond kMaxGridY)
  int threads_x;     // channel vectors per block
  int threads_y;     // position slices per block
};

inline ChannelPoolShape channel_pool_launch(int64_t channel_vectors, int64_t batch, int64_t positions) {
  int threads_x = 1;
  while (threads_x < kWarpSize && threads_x < channel_vectors) threads_x *= 2;
  int threads_y = 1;
  while (threads_x * threads_y * 2 <= kChannelPoolThreads && threads_y < positions) threads_y *= 2;
  return {ceil_div(channel_vectors, threads_x), grid_blocks(batch, kMaxGridY), threads_x, threads_y};
}

// The metric-learning kernels' shapes are in cuda/mining_launch.cuh.

}  // namespace bdb
