// Host side of the CUDA triplet_loss_from_mined and its backward: checks (host/triplet_loss_args.h),
// one single-block launch each on the current stream (triplet_loss_kernels.cuh). No host sync, no
// allocation beyond the outputs.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "runtime.h"

#include "../host/triplet_loss_args.h"
#include "triplet_loss_kernels.cuh"

namespace bdb {
namespace {

// The op names in error messages (constant expressions, as AT_DISPATCH wants its name).
constexpr const char* kForwardOp = "bdb_ext::triplet_loss_from_mined";
constexpr const char* kBackwardOp = "bdb_ext::_triplet_loss_from_mined_backward";

at::Tensor triplet_loss_from_mined_kernel_device(const at::Tensor& d_ap_in, const at::Tensor& d_an_in,
                                                 const at::Tensor& idx_n_in, std::optional<double> margin,
                                                 c10::string_view reduction_name) {
  KernelDeviceGuard guard(d_ap_in.device());
  const TripletLossInput in = prepare_triplet_loss(d_ap_in, d_an_in, idx_n_in, margin, reduction_name, kForwardOp);
  const at::Tensor &d_ap = in.d_ap, &d_an = in.d_an, &idx_n = in.idx_n, &out = in.out;
  const int reduction = in.reduction;
  if (out.numel() == 0) return out;  // "none" over no anchors
  const LaunchShape shape = triplet_loss_launch();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, d_ap.scalar_type(), kForwardOp, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto kernel = triplet_loss_forward_kernel<scalar_t>;
    BDB_LAUNCH_KERNEL(kernel, dim3(static_cast<unsigned>(shape.blocks)), dim3(shape.threads),
                      current_kernel_stream(), d_ap.const_data_ptr<scalar_t>(), d_an.const_data_ptr<scalar_t>(),
                      idx_n.const_data_ptr<int64_t>(), d_ap.size(0), !margin.has_value(),
                      static_cast<acc_t>(margin.value_or(0.0)), reduction, out.mutable_data_ptr<scalar_t>());
    BDB_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> triplet_loss_from_mined_backward_kernel_device(
    const at::Tensor& grad_in, const at::Tensor& d_ap_in, const at::Tensor& d_an_in, const at::Tensor& idx_n_in,
    std::optional<double> margin, c10::string_view reduction_name) {
  KernelDeviceGuard guard(d_ap_in.device());
  const TripletLossGradInput in =
      prepare_triplet_loss_backward(grad_in, d_ap_in, d_an_in, idx_n_in, margin, reduction_name, kBackwardOp);
  const at::Tensor &grad = in.grad, &d_ap = in.d_ap, &d_an = in.d_an, &idx_n = in.idx_n;
  const at::Tensor &grad_ap = in.grad_ap, &grad_an = in.grad_an;
  const int reduction = in.reduction;
  if (d_ap.numel() == 0) return {grad_ap, grad_an};
  const LaunchShape shape = triplet_loss_launch();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, d_ap.scalar_type(), kBackwardOp, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto kernel = triplet_loss_backward_kernel<scalar_t>;
    BDB_LAUNCH_KERNEL(kernel, dim3(static_cast<unsigned>(shape.blocks)), dim3(shape.threads),
                      current_kernel_stream(), grad.const_data_ptr<scalar_t>(),
                      static_cast<int64_t>(reduction == kTripletNone ? 1 : 0), d_ap.const_data_ptr<scalar_t>(),
                      d_an.const_data_ptr<scalar_t>(), idx_n.const_data_ptr<int64_t>(), d_ap.size(0),
                      !margin.has_value(), static_cast<acc_t>(margin.value_or(0.0)), reduction,
                      grad_ap.mutable_data_ptr<scalar_t>(), grad_an.mutable_data_ptr<scalar_t>());
    BDB_KERNEL_LAUNCH_CHECK();
  });
  return {grad_ap, grad_an};
}

}  // namespace
}  // namespace bdb

TORCH_LIBRARY_IMPL(BDB_KERNEL_LIBRARY, BDB_KERNEL_DISPATCH_KEY, m) {
  m.impl("triplet_loss_from_mined", &bdb::triplet_loss_from_mined_kernel_device);
  m.impl("_triplet_loss_from_mined_backward", &bdb::triplet_loss_from_mined_backward_kernel_device);
}
