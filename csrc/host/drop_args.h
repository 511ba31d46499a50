// Argument checks and layout choices shared by the CPU and CUDA host code of the drop ops, so both
// backends reject the same inputs with the same messages.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string_view>

#include "../common/drop_rect.h"
#include "../common/map_layout.h"

namespace bdb {

inline void check_feature_map(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() == 4, op, ": x must be a 4-D tensor (N, C, H, W), got ", x.dim(),
              "-D with shape ", x.sizes());
  const auto dt = x.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble || dt == at::kHalf || dt == at::kBFloat16, op,
              ": x must be float32, float64, float16 or bfloat16, got ", dt);
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
  TORCH_CHECK(rect.is_cpu() || rect.device() == x.device(), op, ": rect must be on the CPU or on x's device (",
              x.device(), "), got ", rect.device());
  if (!rect.is_cpu()) return;
  const auto r = rect.contiguous();
  const int64_t* v = r.const_data_ptr<int64_t>();
  const int64_t H = x.size(2), W = x.size(3);
  TORCH_CHECK(v[2] >= 0 && v[3] >= 0, op, ": rect height and width must be >= 0, got [top=", v[0],
              ", left=", v[1], ", height=", v[2], ", width=", v[3], "]");
  TORCH_CHECK(v[0] >= 0 && v[1] >= 0 && v[0] + v[2] <= H && v[1] + v[3] <= W, op,
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

inline void check_pool_backward_args(const at::Tensor& grad_out, const at::Tensor& argmax,
                                     at::IntArrayRef input_size, bool is_max, const char* op) {
  TORCH_CHECK(input_size.size() == 4, op, ": input_size must have 4 entries, got ", input_size.size());
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == input_size[0] && grad_out.size(1) == input_size[1],
              op, ": grad_out must have shape (N, C) = (", input_size[0], ", ", input_size[1], "), got ",
              grad_out.sizes());
  if (is_max) {
    TORCH_CHECK(argmax.scalar_type() == at::kLong && argmax.sizes() == grad_out.sizes(), op,
                ": argmax must be int64 with the shape of grad_out, got ", argmax.scalar_type(), " ",
                argmax.sizes());
  }
}

}  // namespace bdb
