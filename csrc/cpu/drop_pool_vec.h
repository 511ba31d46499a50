// drop_pool's forward, vectorised with ATen's at::vec and compiled once per CPU capability.
//
// ATen compiles its CPU kernels once per capability (DEFAULT, AVX2, AVX512: -mavx2 ... per file) and
// picks one at run time from at::native::get_cpu_capability(), which honours ATEN_CPU_CAPABILITY.
// An out-of-tree extension gets one set of compiler flags for every source, so each capability here
// is a small translation unit (drop_pool_vec_{default,avx2,avx512}.cpp) that turns the instruction
// set on with `#pragma GCC target` and the matching CPU_CAPABILITY_* macros before it includes
// at::vec, then compiles drop_pool_vec_kernels.h. The choice at run time is ATen's own, so the
// extension uses AVX-512 exactly when ATen's kernels do (and ATEN_CPU_CAPABILITY=default turns both off).
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>

#include "../common/drop_rect.h"
#include "../common/map_layout.h"

namespace bdb::cpu {

// One drop_pool forward over a dense map (NCHW-contiguous or channels_last, per m.channels_last).
struct DropPoolProblem {
  const void* x;    // N x C x H x W of the dispatched dtype
  void* out;        // N x C of the same dtype
  int64_t* argmax;  // N x C, or nullptr for "avg"
  MapLayout m;
  DropRect r;
  bool is_max;
};

using DropPoolKernel = void (*)(const DropPoolProblem&);

// Each capability's kernel for float32/float64/float16/bfloat16 (nullptr for any other dtype).
namespace DEFAULT {
DropPoolKernel drop_pool_kernel(c10::ScalarType dtype);
}
#if defined(__x86_64__) || defined(_M_X64)
namespace AVX2 {
DropPoolKernel drop_pool_kernel(c10::ScalarType dtype);
}
namespace AVX512 {
DropPoolKernel drop_pool_kernel(c10::ScalarType dtype);
}
#endif

// The kernel for ATen's current CPU capability.
DropPoolKernel select_drop_pool_kernel(c10::ScalarType dtype);

// The capability that select_drop_pool_kernel uses ("DEFAULT", "AVX2" or "AVX512"), for build_info.
const char* drop_pool_capability();

}  // namespace bdb::cpu
