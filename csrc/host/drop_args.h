// Argument checks and layout choices shared by the CPU and CUDA host code of the drop ops, so both
// backends reject the same inputs with the same messages.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <string_view>
#include <tuple>

#include "../common/drop_rect.h"
#include "../common/map_layout.h"
#include "tensor_checks.h"

namespace bdb {

inline void check_map_dtype(const at::Tensor& t, const char* name, const char* op) {
  const auto dt = t.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble || dt == at::kHalf || dt == at::kBFloat16, op, ": ", name,
              " must be float32, float64, float16 or bfloat16, got ", dt);
}

inline void check_feature_map(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() == 4, op, ": x must be a 4-D tensor (N, C, H, W), got ", x.dim(),
              "-D with shape ", x.sizes());
  check_map_dtype(x, "x", op);
  TORCH_CHECK(x.size(2) > 0 && x.size(3) > 0, op, ": x must have H >= 1 and W >= 1, got shape ",
              x.sizes());
}

// The rect tensor: int64, 4 values [top, left, height, width], on the CPU or on x's device.
// Values are checked whenever the host can read them without a sync (a CPU rect).
inline void check_rect(const at::Tensor& rect, const at::Tensor& x, const char* op) {
  TORCH_CHECK(rect.scalar_type() == at::kLong, op,
              ": rect must be an int64 tensor [top, left, height, width], got dtype ",
              rect.scalar_type());
  TORCH_CHECK(rect.dim() == 1 && rect.numel() == 4, op,
              ": rect must have shape (4,) = [top, left, height, width], got shape ", rect.sizes());
  check_on_device(rect, "rect", x.device(), "x", op, /*cpu_ok=*/true);
  if (!rect.is_cpu()) return;
  const auto r = rect.contiguous();
  const int64_t* v = r.const_data_ptr<int64_t>();
  const int64_t H = x.size(2), W = x.size(3);
  TORCH_CHECK(v[2] >= 0 && v[3] >= 0, op, ": rect height and width must be >= 0, got [top=", v[0],
              ", left=", v[1], ", height=", v[2], ", width=", v[3], "]");
  // Written so that nothing overflows: top <= H first, then height <= H - top (no top + height).
  TORCH_CHECK(v[0] >= 0 && v[1] >= 0 && v[0] <= H && v[1] <= W && v[2] <= H - v[0] && v[3] <= W - v[1], op,
              ": rect [top=", v[0], ", left=", v[1], ", height=", v[2], ", width=", v[3],
              "] must lie inside the ", H, "x", W, " feature map");
}

// A RectArg for a kernel running on `kernel_device`: the pointer when the rect lives there (read in
// the kernel, no host sync), the values when it is on the CPU. `rect` must outlive the launch.
inline RectArg make_rect_arg(const at::Tensor& rect, bool rect_on_kernel_device) {
  RectArg arg{};
  if (rect_on_kernel_device) {
    arg.device_values = rect.const_data_ptr<int64_t>();
  }
  if (rect.is_cpu()) {
    const int64_t* v = rect.const_data_ptr<int64_t>();
    for (int i = 0; i < 4; ++i) arg.host_values[i] = v[i];
  }
  return arg;
}

// NCHW-contiguous and channels_last inputs are read in place; any other strides are copied to
// NCHW first (correct, not fast).
inline at::Tensor dense_feature_map(const at::Tensor& x, bool& channels_last) {
  if (x.is_contiguous()) {
    channels_last = false;
    return x;
  }
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    channels_last = true;
    return x;
  }
  channels_last = false;
  return x.contiguous();
}

inline MapLayout map_layout_of(const at::Tensor& x, bool channels_last) {
  return MapLayout{x.size(0), x.size(1), x.size(2), x.size(3), channels_last};
}

inline at::MemoryFormat memory_format_of(bool channels_last) {
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

inline bool parse_pool_mode(std::string_view mode, const char* op) {
  TORCH_CHECK(mode == "max" || mode == "avg", op, ": mode must be \"max\" or \"avg\", got \"", mode, "\"");
  return mode == "max";
}

// What a drop entry point works on: the checked input, read in place when it is dense.
struct DropInput {
  at::Tensor x;     // NCHW-contiguous or channels_last; any other strides copied to NCHW (or kept, see below)
  at::Tensor rect;  // contiguous; must outlive the kernel, which may read it through a pointer
  MapLayout map;
  bool channels_last;
};

// The one preparation of batch_drop_block, its backward and drop_pool, for every backend: checks,
// then the dense layout. keep_strides (the CPU backward): an input with no dense layout is returned
// as it is, for a kernel that reads it through its strides (an expanded gradient, say); map then
// describes NCHW, the layout of the output.
inline DropInput prepare_drop_input(const at::Tensor& input, const at::Tensor& rect, const char* op,
                                    bool keep_strides = false) {
  check_feature_map(input, op);
  check_rect(rect, input, op);
  DropInput in;
  const bool dense = input.is_contiguous() || input.is_contiguous(at::MemoryFormat::ChannelsLast);
  in.x = keep_strides && !dense ? input : dense_feature_map(input, in.channels_last);
  if (!dense) in.channels_last = false;
  in.rect = rect.contiguous();
  in.map = map_layout_of(in.x, in.channels_last);
  return in;
}

// The output of batch_drop_block (and of its backward): x's shape, dtype and device, dense layout.
inline at::Tensor empty_map_like(const DropInput& in) {
  return at::empty(in.x.sizes(), in.x.options().memory_format(memory_format_of(in.channels_last)));
}

// drop_pool's outputs: pooled (N, C) in x's dtype and argmax (N, C) int64 ((0, 0) when not wanted: for
// "avg", or for "max" called with with_argmax=False).
inline std::tuple<at::Tensor, at::Tensor> empty_pool_outputs(const DropInput& in, bool with_argmax) {
  const int64_t N = in.map.N, C = in.map.C;
  return {at::empty({N, C}, in.x.options()),
          at::empty({with_argmax ? N : 0, with_argmax ? C : 0}, in.x.options().dtype(at::kLong))};
}

// What _drop_pool_backward works on.
struct PoolGradInput {
  at::Tensor grad_out;  // (N, C); contiguous unless keep_strides
  at::Tensor argmax;    // (N, C) int64, contiguous (max); undefined for avg
  at::Tensor rect;      // contiguous
  at::Tensor dx;        // the output: input_size, NCHW or channels_last
  MapLayout map;
  bool is_max;
};

// The checks and preparation of _drop_pool_backward, for every backend. The argmax is range-checked
// here when it is on the CPU ([-1, H*W): the kernels index the map with it); a device argmax is
// checked where the kernel reads it. keep_strides: grad_out is kept as it is (the CPU kernel reads
// it through its strides, so an expanded gradient is never materialised).
inline PoolGradInput prepare_pool_backward(const at::Tensor& grad_out, const at::Tensor& argmax, const at::Tensor& rect,
                                           std::string_view mode, at::IntArrayRef input_size, bool channels_last,
                                           const char* op, IndexCheck indices, bool keep_strides = false) {
  PoolGradInput in;
  in.is_max = parse_pool_mode(mode, op);
  TORCH_CHECK(input_size.size() == 4, op, ": input_size must have 4 entries, got ", input_size.size());
  for (const int64_t s : input_size) TORCH_CHECK(s >= 0, op, ": input_size must be >= 0, got ", input_size);
  check_map_dtype(grad_out, "grad_out", op);
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == input_size[0] && grad_out.size(1) == input_size[1],
              op, ": grad_out must have shape (N, C) = (", input_size[0], ", ", input_size[1], "), got ",
              grad_out.sizes());
  if (in.is_max) {
    TORCH_CHECK(argmax.scalar_type() == at::kLong && argmax.sizes() == grad_out.sizes(), op,
                ": argmax must be int64 with the shape of grad_out, got ", argmax.scalar_type(), " ",
                argmax.sizes());
    check_on_device(argmax, "argmax", grad_out.device(), "grad_out", op);
  }
  in.dx = at::empty(input_size, grad_out.options().memory_format(memory_format_of(channels_last)));
  check_rect(rect, in.dx, op);
  in.rect = rect.contiguous();
  in.grad_out = keep_strides ? grad_out : grad_out.contiguous();
  if (in.is_max) {
    in.argmax = argmax.contiguous();
    if (indices == IndexCheck::kOnHost) {
      check_index_range(in.argmax, -1, input_size[2] * input_size[3], "argmax", op);
    }
  }
  in.map = map_layout_of(in.dx, channels_last);
  return in;
}

}  // namespace bdb
