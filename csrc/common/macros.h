// Qualifiers shared by the CPU kernels, the CUDA kernels and the CUDA emulation build.
// Device-code headers include only this file and c10/util scalar types, never ATen tensors,
// so the same source compiles under nvcc, under g++ as plain C++, and under the emulator.
#pragma once

#if defined(__CUDACC__)
#define BDB_HOST_DEVICE __host__ __device__
#define BDB_INLINE __host__ __device__ __forceinline__
#else
#define BDB_HOST_DEVICE
#define BDB_INLINE inline
#endif
