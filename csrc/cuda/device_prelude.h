// Included first by every device-code header. Under nvcc it adds nothing; in the CPU emulation
// build (g++ with BDB_CUDA_EMULATION) it supplies threadIdx, __syncthreads, __shfl_*_sync, ...
#pragma once

#if defined(BDB_CUDA_EMULATION) && !defined(__CUDACC__)
#include "../emulation/cuda_emulation.h"
#endif

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include "launch.h"
#include "../common/macros.h"

// A device-side check that stops the kernel with a message instead of letting a bad index write out
// of bounds: CUDA_KERNEL_ASSERT_MSG under nvcc (the launch then fails with "device-side assert
// triggered", as in ATen), a launch error carrying the message under the emulator.
#if defined(__CUDACC__)
#define BDB_DEVICE_ASSERT(cond, msg) CUDA_KERNEL_ASSERT_MSG(cond, msg)
#else
#define BDB_DEVICE_ASSERT(cond, msg) \
  if (!(cond)) ::bdb_emu::device_assert_failed(#cond, msg, __FILE__, __LINE__)
#endif

namespace bdb {

// One aligned load or store of N scalars; the host only picks N > 1 when the pointers are
// aligned to sizeof(T) * N and the contiguous inner dimension is a multiple of N.
template <typename T, int N>
struct alignas(sizeof(T) * N) VecOf {
  T v[N];
};

// A grid-stride loop over blockIdx.x / threadIdx.x, `for (i = grid_stride_first(); i < n; i +=
// grid_stride_step())`: this thread's first index and the step, both in 64 bits (blockIdx.x *
// blockDim.x alone can pass 2^31 on a large grid).
__device__ __forceinline__ int64_t grid_stride_first() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride_step() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

}  // namespace bdb
