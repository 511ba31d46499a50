// drop_pool's vectorised forward for AVX2 (+FMA, F16C), the flags ATen builds its AVX2 kernels with.
#if defined(__x86_64__) || defined(_M_X64)
#include "vec_prelude.h"

// Passing 32-byte vectors between functions of this unit is internal to it; GCC's note that their
// ABI changed in GCC 4.6 says nothing here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
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
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#include "drop_pool_vec_kernels.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
