// The few host-side CUDA runtime facilities the op host code needs, behind names that the CPU
// emulation build (BDB_CUDA_EMULATION) provides too; host .cu files include only this.
#pragma once

#if defined(BDB_CUDA_EMULATION)
#include "../emulation/runtime.h"
#else
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace bdb {
using KernelStream = cudaStream_t;
inline KernelStream current_kernel_stream() { return c10::cuda::getCurrentCUDAStream(); }
using KernelDeviceGuard = c10::cuda::CUDAGuard;
// Where the kernels run: a rect tensor already there is read in the kernel itself.
inline bool on_kernel_device(const at::Tensor& t) { return t.is_cuda(); }
}  // namespace bdb

#define BDB_KERNEL_LAUNCH_CHECK() C10_CUDA_KERNEL_LAUNCH_CHECK()
// The op library and dispatch key the kernels register under.
#define BDB_KERNEL_LIBRARY bdb_ext
#define BDB_KERNEL_DISPATCH_KEY CUDA
#endif
