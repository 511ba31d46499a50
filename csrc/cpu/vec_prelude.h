// Included by each per-capability translation unit BEFORE it turns an instruction set on.
//
// `#pragma GCC target("avx2")` applies to every function defined after it. An inline function or
// template defined there and also in the DEFAULT unit would get the same mangled name with AVX2
// code, and the linker would keep either copy: an illegal instruction on a CPU without AVX2. So
// everything at::vec includes that is not itself inside at::vec's per-capability namespace
// (at::vec::CPU_CAPABILITY, distinct per unit), and the project's own headers, are included here
// first, where the default target applies; include guards keep them from being compiled again.
#pragma once

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <x86intrin.h>
#endif

#include <ATen/NumericUtils.h>
#include <ATen/Parallel.h>
#include <ATen/native/Math.h>
#include <ATen/native/cpu/zmath.h>
#include <ATen/native/quantized/AffineQuantizerBase.h>
#include <c10/core/ScalarType.h>
#include <c10/macros/Macros.h>
#include <c10/util/BFloat16-math.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>
#include <c10/util/Load.h>
#include <c10/util/TypeCast.h>
#include <c10/util/copysign.h>
#include <c10/util/irange.h>
#include <c10/util/qint32.h>
#include <c10/util/qint8.h>
#include <c10/util/quint8.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <ostream>
#include <type_traits>
#include <vector>

#include "../common/drop_rect.h"
#include "../common/map_layout.h"
#include "../common/max_candidate.h"
#include "drop_pool_vec.h"
#include "kept_runs.h"
