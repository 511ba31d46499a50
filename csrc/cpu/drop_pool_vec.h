// drop_pool's forward, vectorised with ATen's at::vec and compiled once per CPU capability.
//
// ATen compiles its CPU kernels once per capability (-mavx2 ... per file) and picks one at run time
// from at::native::get_cpu_capability() (cpuinfo, capped by ATEN_CPU_CAPABILITY). An out-of-tree
// extension gets one set of compiler flags for every source, so each capability here is a small
// translation unit (drop_pool_vec_{default,avx2}.cpp) that turns its instruction set on with
// `#pragma GCC target` and the matching CPU_CAPABILITY macros before it includes at::vec, then
// compiles drop_pool_vec_kernels.h; no setup.py flag is involved. The choice at run time follows
// ATen's: DEFAULT or AVX2 as ATen reports, and on an AVX-512 machine the AVX2 kernel, which is
// what ATen's REGISTER_DISPATCH does for every kernel not also registered for AVX512. (An AVX-512
// build of an earlier version of this kernel took 1.3-1.5x the AVX2 build's CPU time on the 2-core
// AMD EPYC: at::vec's 512-bit compares return vector masks that its blendv turns back into k-masks,
// extra instructions in a loop that is bound by loads, not by width.)
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
  int64_t* argmax;  // N x C, or nullptr: "avg", or a "max" whose caller wants the values only
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
#endif

// The kernel for ATen's current CPU capability.
DropPoolKernel select_drop_pool_kernel(c10::ScalarType dtype);

}  // namespace bdb::cpu
