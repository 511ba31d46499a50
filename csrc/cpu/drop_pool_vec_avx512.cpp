// drop_pool's vectorised forward for AVX-512 (F, BW, VL, DQ + FMA), the set ATen's AVX512 kernels need.
#if defined(__x86_64__) || defined(_M_X64)
#include "vec_prelude.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#endif
// g++ and clang++ do not define the feature macros for a target pragma in C++; at::vec and
// sleef.h select their code by them, so they are defined here, for this unit only.
#ifndef __AVX__
#define __AVX__ 1
#endif
#ifndef __AVX2__
#define __AVX2__ 1
#endif
#ifndef __FMA__
#define __FMA__ 1
#endif
#ifndef __F16C__
#define __F16C__ 1
#endif
#ifndef __AVX512F__
#define __AVX512F__ 1
#endif
#ifndef __AVX512BW__
#define __AVX512BW__ 1
#endif
#ifndef __AVX512VL__
#define __AVX512VL__ 1
#endif
#ifndef __AVX512DQ__
#define __AVX512DQ__ 1
#endif
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#include "drop_pool_vec_kernels.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
