// CPU kernels of the drop ops: parallel over (n, c) planes (NCHW) or over samples and positions
// (channels_last), dropped rows skipped rather than multiplied. drop_pool's forward is vectorised
// with at::vec per CPU capability (drop_pool_vec.h); the backward reads a strided gradient (an
// expanded one from sum() or mean(), say) in place instead of materialising it.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/Version.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "../host/drop_args.h"
#include "drop_pool_vec.h"
#include "kept_runs.h"

namespace bdb {
namespace cpu {

namespace {

// ATen's capability, read once: at::get_cpu_capability() is the exported face of
// at::native::get_cpu_capability() and fixed for the process. AVX512 runs the AVX2 kernel, as
// ATen's REGISTER_DISPATCH does (see drop_pool_vec.h).
bool use_avx2() {
  static const bool avx2 = [] {
    const std::string name = at::get_cpu_capability();
    return name == "AVX2" || name == "AVX512";
  }();
  return avx2;
}

}  // namespace

DropPoolKernel select_drop_pool_kernel(c10::ScalarType dtype) {
#if defined(__x86_64__) || defined(_M_X64)
  if (use_avx2()) return AVX2::drop_pool_kernel(dtype);
#endif
  return DEFAULT::drop_pool_kernel(dtype);
}

}  // namespace cpu

namespace {

template <typename scalar_t>
void drop_block_cpu_impl(const scalar_t* x, scalar_t* y, const MapLayout& m, const DropRect& r) {
  const scalar_t zero(0);
  if (!m.channels_last) {
    const int64_t hw = m.H * m.W;
    at::parallel_for(0, m.N * m.C, grain_for(hw), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* src = x + plane * hw;
        scalar_t* dst = y + plane * hw;
        // Zero the plane's dropped runs in between copying its kept runs.
        int64_t done = 0;
        for_each_kept_run(m, r, [&](int64_t run_begin, int64_t run_end) {
          std::fill(dst + done, dst + run_begin, zero);
          std::copy(src + run_begin, src + run_end, dst + run_begin);
          done = run_end;
        });
        std::fill(dst + done, dst + hw, zero);
      }
    });
  } else {
    const int64_t row = m.W * m.C;
    at::parallel_for(0, m.N * m.H, grain_for(row), [&](int64_t begin, int64_t end) {
      for (int64_t nh = begin; nh < end; ++nh) {
        const int64_t h = nh % m.H;
        const scalar_t* src = x + nh * row;
        scalar_t* dst = y + nh * row;
        if (!r.row_dropped(h)) {
          std::copy(src, src + row, dst);
        } else {
          std::copy(src, src + r.left * m.C, dst);
          std::fill(dst + r.left * m.C, dst + (r.left + r.width) * m.C, zero);
          std::copy(src + (r.left + r.width) * m.C, src + row, dst + (r.left + r.width) * m.C);
        }
      }
    });
  }
}

// std::fill through the value's bit pattern: for c10::Half / c10::BFloat16 (classes with a converting
// constructor) GCC emits a store loop per element; on uint16_t it emits vector stores.
template <typename scalar_t>
inline void fill_bits(scalar_t* dst, int64_t count, scalar_t value) {
  using bits_t = std::conditional_t<sizeof(scalar_t) == 2, uint16_t, std::conditional_t<sizeof(scalar_t) == 4, uint32_t, uint64_t>>;
  static_assert(sizeof(bits_t) == sizeof(scalar_t));
  bits_t pattern;
  std::memcpy(&pattern, &value, sizeof(pattern));
  std::fill_n(reinterpret_cast<bits_t*>(dst), count, pattern);
}

// A map with no dense layout, read through its strides into an NCHW result. The gradients autograd
// hands over from sum(), mean() or expand() have stride 0 in H and W, one value per plane: each
// plane is then filled run by run (the value, or 0 in the rectangle), and nothing the size of the
// map is ever read.
template <typename scalar_t>
void drop_block_strided_impl(const scalar_t* x, at::IntArrayRef strides, scalar_t* y, const MapLayout& m,
                             const DropRect& r) {
  const int64_t sN = strides[0], sC = strides[1], sH = strides[2], sW = strides[3];
  const int64_t hw = m.H * m.W;
  const scalar_t zero(0);
  at::parallel_for(0, m.N * m.C, grain_for(hw), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const scalar_t* src = x + (plane / m.C) * sN + (plane % m.C) * sC;
      scalar_t* dst = y + plane * hw;
      if (sH == 0 && sW == 0) {
        // One value per plane: each element written once, kept runs with it and dropped runs with 0.
        const scalar_t v = src[0];
        int64_t done = 0;
        for_each_kept_run(m, r, [&](int64_t run_begin, int64_t run_end) {
          fill_bits(dst + done, run_begin - done, zero);
          fill_bits(dst + run_begin, run_end - run_begin, v);
          done = run_end;
        });
        fill_bits(dst + done, hw - done, zero);
        continue;
      }
      for (int64_t h = 0; h < m.H; ++h) {
        const scalar_t* row = src + h * sH;
        scalar_t* out = dst + h * m.W;
        if (sW == 1) {
          std::copy(row, row + m.W, out);
        } else if (sW == 0) {
          std::fill(out, out + m.W, row[0]);
        } else {
          for (int64_t w = 0; w < m.W; ++w) out[w] = row[w * sW];
        }
      }
      for (int64_t h = r.top; h < r.top + r.height; ++h) std::fill(dst + h * m.W + r.left, dst + h * m.W + r.left + r.width, zero);
    }
  });
}

// keep_strides: the backward reads a non-dense gradient through its strides (see above); the
// forward copies a non-dense x to NCHW once, as its output has that layout anyway.
at::Tensor drop_block_cpu(const at::Tensor& input, const at::Tensor& rect, const char* op, bool keep_strides) {
  const DropInput in = prepare_drop_input(input, rect, op, keep_strides);
  at::Tensor y = empty_map_like(in);
  if (y.numel() == 0) return y;
  const DropRect r = load_rect(make_rect_arg(in.rect, true), in.map.H, in.map.W);
  const bool dense = in.channels_last || in.x.is_contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.x.scalar_type(), "bdb_ext::batch_drop_block", [&] {
    if (dense) {
      drop_block_cpu_impl(in.x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), in.map, r);
    } else {
      drop_block_strided_impl(in.x.const_data_ptr<scalar_t>(), in.x.strides(), y.mutable_data_ptr<scalar_t>(), in.map, r);
    }
  });
  return y;
}

at::Tensor batch_drop_block_cpu(const at::Tensor& x, const at::Tensor& rect) {
  return drop_block_cpu(x, rect, "bdb_ext::batch_drop_block", /*keep_strides=*/false);
}

// Zeroing the rectangle is its own derivative.
at::Tensor batch_drop_block_backward_cpu(const at::Tensor& grad_y, const at::Tensor& rect) {
  return drop_block_cpu(grad_y, rect, "bdb_ext::_batch_drop_block_backward", /*keep_strides=*/true);
}

std::tuple<at::Tensor, at::Tensor> drop_pool_cpu(const at::Tensor& input, const at::Tensor& rect,
                                                 c10::string_view mode, bool with_argmax) {
  const char* op = "bdb_ext::drop_pool";
  const bool is_max = parse_pool_mode(mode, op);
  const DropInput in = prepare_drop_input(input, rect, op);
  at::Tensor out, argmax;
  std::tie(out, argmax) = empty_pool_outputs(in, is_max && with_argmax);
  if (out.numel() == 0) return {out, argmax};
  const cpu::DropPoolKernel kernel = cpu::select_drop_pool_kernel(in.x.scalar_type());
  TORCH_CHECK(kernel != nullptr, "bdb_ext internal error: no drop_pool kernel for ", in.x.scalar_type());
  kernel(cpu::DropPoolProblem{in.x.const_data_ptr(), out.mutable_data_ptr(),
                              argmax.numel() > 0 ? argmax.mutable_data_ptr<int64_t>() : nullptr, in.map,
                              load_rect(make_rect_arg(in.rect, true), in.map.H, in.map.W), is_max});
  return {out, argmax};
}

// The value each (n, c) spreads over its map: grad for max, grad / (H * W) for avg. Read once
// through grad_out's strides (an expanded gradient is a stride-0 view: read in place), so the map
// loops below read a contiguous N x C array.
template <typename scalar_t>
std::vector<scalar_t> plane_grad_values(const at::Tensor& grad_out, bool is_max, int64_t hw) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = grad_out.size(0), C = grad_out.size(1);
  const int64_t sN = grad_out.stride(0), sC = grad_out.stride(1);
  const scalar_t* g = grad_out.const_data_ptr<scalar_t>();
  std::vector<scalar_t> values(static_cast<size_t>(N * C));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      const scalar_t v = g[n * sN + c * sC];
      values[n * C + c] = is_max ? v : static_cast<scalar_t>(static_cast<acc_t>(v) / static_cast<acc_t>(hw));
    }
  }
  return values;
}

template <typename scalar_t>
void drop_pool_backward_cpu_impl(const scalar_t* v, const int64_t* argmax, scalar_t* dx, const MapLayout& m,
                                 const DropRect& r, bool is_max) {
  const int64_t hw = m.H * m.W;
  const scalar_t zero(0);
  if (!m.channels_last) {
    at::parallel_for(0, m.N * m.C, grain_for(hw), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        scalar_t* d = dx + plane * hw;
        if (is_max) {
          std::fill(d, d + hw, zero);
          if (argmax[plane] >= 0) d[argmax[plane]] = v[plane];
          continue;
        }
        std::fill(d, d + hw, v[plane]);
        for (int64_t h = r.top; h < r.top + r.height; ++h) std::fill(d + h * m.W + r.left, d + h * m.W + r.left + r.width, zero);
      }
    });
    return;
  }
  at::parallel_for(0, m.N * hw, grain_for(m.C), [&](int64_t begin, int64_t end) {
    for (int64_t npos = begin; npos < end; ++npos) {
      const int64_t n = npos / hw;
      const int64_t pos = npos % hw;
      scalar_t* d = dx + npos * m.C;
      const scalar_t* vn = v + n * m.C;
      if (is_max) {
        const int64_t* an = argmax + n * m.C;
        for (int64_t c = 0; c < m.C; ++c) d[c] = an[c] == pos ? vn[c] : zero;
      } else if (r.dropped(pos / m.W, pos % m.W)) {
        std::fill(d, d + m.C, zero);
      } else {
        std::copy(vn, vn + m.C, d);
      }
    }
  });
}

at::Tensor drop_pool_backward_cpu(const at::Tensor& grad_out, const at::Tensor& argmax, const at::Tensor& rect,
                                  c10::string_view mode, at::IntArrayRef input_size, bool channels_last) {
  const char* op = "bdb_ext::_drop_pool_backward";
  const PoolGradInput in =
      prepare_pool_backward(grad_out, argmax, rect, mode, input_size, channels_last, op, IndexCheck::kOnHost,
                            /*keep_strides=*/true);
  at::Tensor dx = in.dx;
  if (dx.numel() == 0) return dx;
  const DropRect r = load_rect(make_rect_arg(in.rect, true), in.map.H, in.map.W);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dx.scalar_type(), "bdb_ext::_drop_pool_backward", [&] {
    const std::vector<scalar_t> values = plane_grad_values<scalar_t>(in.grad_out, in.is_max, in.map.H * in.map.W);
    drop_pool_backward_cpu_impl(values.data(), in.is_max ? in.argmax.const_data_ptr<int64_t>() : nullptr,
                                dx.mutable_data_ptr<scalar_t>(), in.map, r, in.is_max);
  });
  return dx;
}

}  // namespace
}  // namespace bdb

TORCH_LIBRARY_IMPL(bdb_ext, CPU, m) {
  m.impl("batch_drop_block", &bdb::batch_drop_block_cpu);
  m.impl("_batch_drop_block_backward", &bdb::batch_drop_block_backward_cpu);
  m.impl("drop_pool", &bdb::drop_pool_cpu);
  m.impl("_drop_pool_backward", &bdb::drop_pool_backward_cpu);
}
