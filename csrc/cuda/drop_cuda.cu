// Host side of the CUDA drop ops: checks, layout and vector-width choice, launches on the current
// stream. The kernels themselves are in drop_kernels.cuh.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "runtime.h"

#include "../host/drop_args.h"
#include "drop_kernels.cuh"

namespace bdb {
namespace {

bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// The widest vector (16 bytes at most) that divides the contiguous inner dimension and to which
// every pointer is aligned; 1 otherwise.
template <typename scalar_t>
int vector_width(int64_t inner, std::initializer_list<const void*> pointers) {
  for (int vec = static_cast<int>(16 / sizeof(scalar_t)); vec > 1; vec /= 2) {
    if (inner % vec != 0) continue;
    bool ok = true;
    for (const void* p : pointers) ok = ok && aligned_to(p, sizeof(scalar_t) * vec);
    if (ok) return vec;
  }
  return 1;
}

int64_t contiguous_inner(const MapLayout& m) { return m.channels_last ? m.C : m.W; }

// Calls fn(std::integral_constant<int, VEC>) for the runtime vector width.
template <typename scalar_t, typename Fn>
void with_vector_width(int vec, Fn&& fn) {
  constexpr int kMax = 16 / sizeof(scalar_t);
  if (vec == 1) return fn(std::integral_constant<int, 1>{});
  if constexpr (kMax >= 2) {
    if (vec == 2) return fn(std::integral_constant<int, 2>{});
  }
  if constexpr (kMax >= 4) {
    if (vec == 4) return fn(std::integral_constant<int, 4>{});
  }
  if constexpr (kMax >= 8) {
    if (vec == 8) return fn(std::integral_constant<int, 8>{});
  }
  TORCH_CHECK(false, "bdb_ext internal error: unsupported vector width ", vec);
}

at::Tensor drop_block_launch(const at::Tensor& input, const at::Tensor& rect, const char* op) {
  KernelDeviceGuard guard(input.device());
  // Other strides (an expanded gradient, a permuted view) are read in place by the strided kernel.
  const DropInput in = prepare_drop_input(input, rect, op, /*keep_strides=*/true);
  const at::Tensor& x = in.x;
  const bool dense = x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor y = empty_map_like(in);
  if (x.numel() == 0) return y;
  const RectArg rect_arg = make_rect_arg(in.rect, on_kernel_device(in.rect));
  const MapLayout map = in.map;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bdb_ext::batch_drop_block", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    const int vec = dense ? vector_width<scalar_t>(contiguous_inner(map), {xp, yp})
                          : vector_width<scalar_t>(map.W, {yp});
    with_vector_width<scalar_t>(vec, [&](auto vec_c) {
      constexpr int VEC = decltype(vec_c)::value;
      const LaunchShape shape = elementwise_launch(map.numel(), VEC);
      const dim3 grid(static_cast<unsigned>(shape.blocks));
      if (dense) {
        auto kernel = drop_block_kernel<scalar_t, VEC>;
        BDB_LAUNCH_KERNEL(kernel, grid, dim3(shape.threads), current_kernel_stream(), xp, yp, map, rect_arg);
      } else {
        const MapStrides xs{x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
        auto kernel = drop_block_strided_kernel<scalar_t, VEC>;
        BDB_LAUNCH_KERNEL(kernel, grid, dim3(shape.threads), current_kernel_stream(), xp, xs, yp, map, rect_arg);
      }
      BDB_KERNEL_LAUNCH_CHECK();
    });
  });
  return y;
}

at::Tensor batch_drop_block_kernel_device(const at::Tensor& x, const at::Tensor& rect) {
  return drop_block_launch(x, rect, "bdb_ext::batch_drop_block");
}

// Zeroing the rectangle is its own derivative: the backward runs the same kernel on the gradient.
at::Tensor batch_drop_block_backward_kernel_device(const at::Tensor& grad_y, const at::Tensor& rect) {
  return drop_block_launch(grad_y, rect, "bdb_ext::_batch_drop_block_backward");
}

std::tuple<at::Tensor, at::Tensor> drop_pool_kernel_device(const at::Tensor& input, const at::Tensor& rect,
                                                           c10::string_view mode, bool with_argmax) {
  const char* op = "bdb_ext::drop_pool";
  const bool is_max = parse_pool_mode(mode, op);
  KernelDeviceGuard guard(input.device());
  const DropInput in = prepare_drop_input(input, rect, op);
  const at::Tensor& x = in.x;
  const bool channels_last = in.channels_last;
  const int64_t N = in.map.N, C = in.map.C, H = in.map.H, W = in.map.W;
  at::Tensor out, argmax;
  std::tie(out, argmax) = empty_pool_outputs(in, is_max && with_argmax);
  if (out.numel() == 0) return {out, argmax};
  const RectArg rect_arg = make_rect_arg(in.rect, on_kernel_device(in.rect));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bdb_ext::drop_pool", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* op_ = out.mutable_data_ptr<scalar_t>();
    int64_t* ap = argmax.numel() > 0 ? argmax.mutable_data_ptr<int64_t>() : nullptr;
    const int vec = vector_width<scalar_t>(channels_last ? C : W, {xp});
    with_vector_width<scalar_t>(vec, [&](auto vec_c) {
      constexpr int VEC = decltype(vec_c)::value;
      auto launch = [&](auto is_max_c) {
        constexpr bool IS_MAX = decltype(is_max_c)::value;
        if (channels_last) {
          const ChannelPoolShape shape = channel_pool_launch(C / VEC, N, H * W);
          auto kernel = drop_pool_channels_kernel<scalar_t, VEC, IS_MAX>;
          const dim3 grid(static_cast<unsigned>(shape.blocks_x), static_cast<unsigned>(shape.blocks_y));
          BDB_LAUNCH_KERNEL(kernel, grid, dim3(shape.threads_x, shape.threads_y), current_kernel_stream(), xp, op_,
                            ap, N, C, H, W, rect_arg);
        } else {
          const PlanePoolShape shape = plane_pool_launch(N * C, H * W / VEC);
          auto kernel = drop_pool_planes_kernel<scalar_t, VEC, IS_MAX>;
          BDB_LAUNCH_KERNEL(kernel, dim3(static_cast<unsigned>(shape.blocks)), dim3(shape.threads),
                            current_kernel_stream(), xp, op_, ap, N * C, H, W, shape.group, rect_arg);
        }
        BDB_KERNEL_LAUNCH_CHECK();
      };
      if (is_max) {
        launch(std::true_type{});
      } else {
        launch(std::false_type{});
      }
    });
  });
  return {out, argmax};
}

at::Tensor drop_pool_backward_kernel_device(const at::Tensor& grad_out_in, const at::Tensor& argmax_in,
                                            const at::Tensor& rect, c10::string_view mode,
                                            at::IntArrayRef input_size, bool channels_last) {
  const char* op = "bdb_ext::_drop_pool_backward";
  KernelDeviceGuard guard(grad_out_in.device());
  const PoolGradInput in = prepare_pool_backward(grad_out_in, argmax_in, rect, mode, input_size, channels_last, op,
                                                 IndexCheck::kInKernel, /*keep_strides=*/true);
  const bool is_max = in.is_max;
  at::Tensor dx = in.dx;
  if (dx.numel() == 0) return dx;
  const at::Tensor& grad_out = in.grad_out;  // read through its strides (an expanded gradient stays expanded)
  const at::Tensor& argmax = in.argmax;
  const RectArg rect_arg = make_rect_arg(in.rect, on_kernel_device(in.rect));
  const MapLayout map = in.map;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dx.scalar_type(), "bdb_ext::_drop_pool_backward", [&] {
    const scalar_t* gp = grad_out.const_data_ptr<scalar_t>();
    const int64_t* ap = is_max ? argmax.const_data_ptr<int64_t>() : nullptr;
    scalar_t* dxp = dx.mutable_data_ptr<scalar_t>();
    const int vec = vector_width<scalar_t>(contiguous_inner(map), {dxp});
    with_vector_width<scalar_t>(vec, [&](auto vec_c) {
      constexpr int VEC = decltype(vec_c)::value;
      const LaunchShape shape = elementwise_launch(map.numel(), VEC);
      auto launch = [&](auto is_max_c) {
        constexpr bool IS_MAX = decltype(is_max_c)::value;
        auto kernel = drop_pool_backward_kernel<scalar_t, VEC, IS_MAX>;
        BDB_LAUNCH_KERNEL(kernel, dim3(static_cast<unsigned>(shape.blocks)), dim3(shape.threads),
                          current_kernel_stream(), gp, grad_out.stride(0), grad_out.stride(1), ap, dxp, map,
                          rect_arg);
        BDB_KERNEL_LAUNCH_CHECK();
      };
      if (is_max) {
        launch(std::true_type{});
      } else {
        launch(std::false_type{});
      }
    });
  });
  return dx;
}

}  // namespace
}  // namespace bdb

TORCH_LIBRARY_IMPL(BDB_KERNEL_LIBRARY, BDB_KERNEL_DISPATCH_KEY, m) {
  m.impl("batch_drop_block", &bdb::batch_drop_block_kernel_device);
  m.impl("_batch_drop_block_backward", &bdb::batch_drop_block_backward_kernel_device);
  m.impl("drop_pool", &bdb::drop_pool_kernel_device);
  m.impl("_drop_pool_backward", &bdb::drop_pool_backward_kernel_device);
}
