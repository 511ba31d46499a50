// Included first by every device-code header. Under nvcc it adds nothing; in the CPU emulation
// build (g++ with BDB_CUDA_EMULATION) it supplies threadIdx, __syncthreads, __shfl_*_sync, ...
#pragma once

#if defined(BDB_CUDA_EMULATION) && !defined(__CUDACC__)
#include "../emulation/cuda_emulation.h"
#endif

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <ATen/OpMathType.h>

#include "launch.h"
#include "../common/macros.h"

namespace bdb {

// One aligned load or store of N scalars; the host only picks N > 1 when the pointers are
// aligned to sizeof(T) * N and the contiguous inner dimension is a multiple of N.
template <typename T, int N>
struct alignas(sizeof(T) * N) VecOf {
  T v[N];
};

}  // namespace bdb
