// A small shared-memory kernel with bugs that can be planted at compile time, to prove that the
// emulation harness catches each kind (tests/emulation/test_planted_bugs.py, scripts/sanitize_emulated.sh):
//   -DBDB_PLANT_BUG_MISSING_SYNC  drops the __syncthreads between filling the tile and reducing it:
//                                 ThreadSanitizer reports a data race on the tile.
//   -DBDB_PLANT_BUG_OFF_BY_ONE    reads in[n], one past the end: a wrong sum against the reference
//                                 (the test puts a sentinel there), or an AddressSanitizer
//                                 heap-buffer-overflow when the buffer is exactly n long.
// Plain CUDA: it compiles under nvcc as well as under the emulator.
#pragma once

#if defined(BDB_CUDA_EMULATION) && !defined(__CUDACC__)
#include "../../csrc/emulation/cuda_emulation.h"
#endif

namespace planted {

constexpr int kBlockSumThreads = 256;

// out[b] = sum of in[b * blockDim.x, (b + 1) * blockDim.x) clipped to n; blockDim.x == 256.
__global__ void block_sum_kernel(const float* __restrict__ in, float* __restrict__ out, int n) {
  __shared__ float tile[kBlockSumThreads];
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
#if defined(BDB_PLANT_BUG_OFF_BY_ONE)
  tile[threadIdx.x] = i <= n ? in[i] : 0.0f;
#else
  tile[threadIdx.x] = i < n ? in[i] : 0.0f;
#endif
#if !defined(BDB_PLANT_BUG_MISSING_SYNC)
  __syncthreads();
#endif
  for (int stride = static_cast<int>(blockDim.x) / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) tile[threadIdx.x] += tile[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = tile[0];
}

}  // namespace planted
