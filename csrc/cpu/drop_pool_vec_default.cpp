// drop_pool's vectorised forward for the baseline instruction set (SSE2 on x86-64; NEON on ARM).
#include "vec_prelude.h"

#define CPU_CAPABILITY DEFAULT
#include "drop_pool_vec_kernels.h"
