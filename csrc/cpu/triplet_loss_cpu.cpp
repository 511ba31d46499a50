// CPU kernels of triplet_loss_from_mined (the batch-hard triplet loss on batch_hard_mine's outputs)
// and its backward. The per-anchor math is common/triplet_loss.h; the forward's sum runs in the
// fixed order defined there (kTripletReduceWidth strided partials, then a pairwise tree), the same
// order as the CUDA kernel's single block, so the two backends give bitwise the same loss.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <array>
#include <optional>
#include <string_view>
#include <tuple>

#include "../common/triplet_loss.h"
#include "../host/triplet_loss_args.h"

namespace bdb {
namespace {

// The op names in error messages (constant expressions, as AT_DISPATCH wants its name).
constexpr const char* kForwardOp = "bdb_ext::triplet_loss_from_mined";
constexpr const char* kBackwardOp = "bdb_ext::_triplet_loss_from_mined_backward";

// Sums kTripletReduceWidth partials in the tree order of common/triplet_loss.h (in place; the
// result is in partials[0]).
template <typename T>
void tree_reduce(std::array<T, kTripletReduceWidth>& partials) {
  for (int stride = kTripletReduceWidth / 2; stride > 0; stride /= 2) {
    for (int t = 0; t < stride; ++t) partials[t] += partials[t + stride];
  }
}

// Anchors with a negative, counted in the same order (an exact integer either way).
int64_t count_with_negative(const int64_t* idx_n, int64_t N) {
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) count += idx_n[i] >= 0 ? 1 : 0;
  return count;
}

template <typename scalar_t>
void forward_impl(const scalar_t* d_ap, const scalar_t* d_an, const int64_t* idx_n, int64_t N, bool soft,
                  at::opmath_type<scalar_t> margin, int reduction, scalar_t* out) {
  using acc_t = at::opmath_type<scalar_t>;
  std::array<acc_t, kTripletReduceWidth> totals{};
  for (int t = 0; t < kTripletReduceWidth; ++t) {
    acc_t total(0);
    for (int64_t i = t; i < N; i += kTripletReduceWidth) {
      const acc_t loss = triplet_anchor_loss<acc_t>(d_ap, d_an, idx_n, i, soft, margin);
      if (reduction == kTripletNone) out[i] = static_cast<scalar_t>(loss);
      total += loss;
    }
    totals[t] = total;
  }
  if (reduction == kTripletNone) return;
  tree_reduce(totals);
  out[0] = static_cast<scalar_t>(triplet_reduced_loss<acc_t>(totals[0], reduction, count_with_negative(idx_n, N)));
}

template <typename scalar_t>
void backward_impl(const scalar_t* grad, int64_t grad_stride, const scalar_t* d_ap, const scalar_t* d_an,
                   const int64_t* idx_n, int64_t N, bool soft, at::opmath_type<scalar_t> margin, int reduction,
                   scalar_t* grad_ap, scalar_t* grad_an) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t count = reduction == kTripletMean ? count_with_negative(idx_n, N) : 0;
  for (int64_t i = 0; i < N; ++i) {
    triplet_anchor_backward<acc_t>(grad, grad_stride, d_ap, d_an, idx_n, i, soft, margin, reduction, count, grad_ap,
                                   grad_an);
  }
}

at::Tensor triplet_loss_from_mined_cpu(const at::Tensor& d_ap_in, const at::Tensor& d_an_in,
                                       const at::Tensor& idx_n_in, std::optional<double> margin,
                                       c10::string_view reduction_name) {
  const TripletLossInput in = prepare_triplet_loss(d_ap_in, d_an_in, idx_n_in, margin, reduction_name, kForwardOp);
  const at::Tensor &d_ap = in.d_ap, &d_an = in.d_an, &idx_n = in.idx_n, &out = in.out;
  const int reduction = in.reduction;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, d_ap.scalar_type(), kForwardOp, [&] {
    forward_impl<scalar_t>(d_ap.const_data_ptr<scalar_t>(), d_an.const_data_ptr<scalar_t>(),
                           idx_n.const_data_ptr<int64_t>(), d_ap.size(0), !margin.has_value(),
                           static_cast<at::opmath_type<scalar_t>>(margin.value_or(0.0)), reduction,
                           out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> triplet_loss_from_mined_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& d_ap_in, const at::Tensor& d_an_in, const at::Tensor& idx_n_in,
    std::optional<double> margin, c10::string_view reduction_name) {
  const TripletLossGradInput in =
      prepare_triplet_loss_backward(grad_in, d_ap_in, d_an_in, idx_n_in, margin, reduction_name, kBackwardOp);
  const at::Tensor &grad = in.grad, &d_ap = in.d_ap, &d_an = in.d_an, &idx_n = in.idx_n;
  const at::Tensor &grad_ap = in.grad_ap, &grad_an = in.grad_an;
  const int reduction = in.reduction;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, d_ap.scalar_type(), kBackwardOp, [&] {
    backward_impl<scalar_t>(grad.const_data_ptr<scalar_t>(), reduction == kTripletNone ? 1 : 0,
                            d_ap.const_data_ptr<scalar_t>(), d_an.const_data_ptr<scalar_t>(),
                            idx_n.const_data_ptr<int64_t>(), d_ap.size(0), !margin.has_value(),
                            static_cast<at::opmath_type<scalar_t>>(margin.value_or(0.0)), reduction,
                            grad_ap.mutable_data_ptr<scalar_t>(), grad_an.mutable_data_ptr<scalar_t>());
  });
  return {grad_ap, grad_an};
}

}  // namespace
}  // namespace bdb

TORCH_LIBRARY_IMPL(bdb_ext, CPU, m) {
  m.impl("triplet_loss_from_mined", &bdb::triplet_loss_from_mined_cpu);
  m.impl("_triplet_loss_from_mined_backward", &bdb::triplet_loss_from_mined_backward_cpu);
}
