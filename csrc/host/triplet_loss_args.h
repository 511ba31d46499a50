// Argument checks and output allocation shared by the CPU and CUDA host code of triplet_loss_from_mined
// and its backward, so both backends reject the same inputs with the same messages.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <optional>

#include <cmath>
#include <string_view>

#include "../common/triplet_loss.h"

namespace bdb {

// "mean" / "sum" / "none" as the kernels' TripletReduction.
inline int parse_triplet_reduction(std::string_view reduction, const char* op) {
  if (reduction == "mean") return kTripletMean;
  if (reduction == "sum") return kTripletSum;
  TORCH_CHECK(reduction == "none", op, ": reduction must be \"mean\", \"sum\" or \"none\", got \"", reduction, "\"");
  return kTripletNone;
}

// None: the soft margin; else a finite float >= 0 (the hard margin relu(d_ap - d_an + margin)).
inline void check_triplet_margin(const std::optional<double>& margin, const char* op) {
  if (!margin.has_value()) return;
  TORCH_CHECK(std::isfinite(*margin) && *margin >= 0, op, ": margin must be a finite float >= 0 or None (soft ",
              "margin), got ", *margin);
}

// d_ap, d_an: (N,) of one floating dtype (float32, float64, float16, bfloat16); idx_n: int64 (N,), all
// on one device. Only the sign of idx_n is read (< 0: the anchor has no negative), so any values are
// safe.
inline void check_triplet_loss_args(const at::Tensor& d_ap, const at::Tensor& d_an, const at::Tensor& idx_n,
                                    const std::optional<double>& margin, const char* op) {
  const auto dt = d_ap.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble || dt == at::kHalf || dt == at::kBFloat16, op,
              ": d_ap must be float32, float64, float16 or bfloat16, got ", dt);
  TORCH_CHECK(d_ap.dim() == 1, op, ": d_ap must be a 1-D tensor (N,) of distances, got shape ", d_ap.sizes());
  const int64_t N = d_ap.size(0);
  TORCH_CHECK(d_an.dim() == 1 && d_an.size(0) == N, op, ": d_an must have shape (N,) = (", N, ",) like d_ap, got ",
              d_an.sizes());
  TORCH_CHECK(d_an.scalar_type() == dt, op, ": d_an must have d_ap's dtype ", dt, ", got ", d_an.scalar_type());
  TORCH_CHECK(idx_n.dim() == 1 && idx_n.size(0) == N, op, ": idx_n must have shape (N,) = (", N,
              ",) like d_ap, got ", idx_n.sizes());
  TORCH_CHECK(idx_n.scalar_type() == at::kLong, op, ": idx_n must be int64, got ", idx_n.scalar_type());
  TORCH_CHECK(d_an.device() == d_ap.device(), op, ": d_an must be on d_ap's device (", d_ap.device(), "), got ",
              d_an.device());
  TORCH_CHECK(idx_n.device() == d_ap.device(), op, ": idx_n must be on d_ap's device (", d_ap.device(), "), got ",
              idx_n.device());
  check_triplet_margin(margin, op);
}

// grad: the gradient of the forward's output: a 0-dim tensor for "mean" and "sum", (N,) for "none",
// in d_ap's dtype and on its device.
inline void check_triplet_loss_backward_args(const at::Tensor& grad, const at::Tensor& d_ap, const at::Tensor& d_an,
                                             const at::Tensor& idx_n, const std::optional<double>& margin,
                                             int reduction, const char* op) {
  check_triplet_loss_args(d_ap, d_an, idx_n, margin, op);
  if (reduction == kTripletNone) {
    TORCH_CHECK(grad.dim() == 1 && grad.size(0) == d_ap.size(0), op, ": grad must have shape (N,) = (",
                d_ap.size(0), ",) for reduction \"none\", got ", grad.sizes());
  } else {
    TORCH_CHECK(grad.dim() == 0, op, ": grad must be a 0-dim tensor for reduction \"mean\" or \"sum\", got shape ",
                grad.sizes());
  }
  TORCH_CHECK(grad.scalar_type() == d_ap.scalar_type(), op, ": grad must have d_ap's dtype ", d_ap.scalar_type(),
              ", got ", grad.scalar_type());
  TORCH_CHECK(grad.device() == d_ap.device(), op, ": grad must be on d_ap's device (", d_ap.device(), "), got ",
              grad.device());
}

// What both backends' forward works on: the checked, contiguous inputs, the reduction and the output
// (() for "mean" and "sum", (N,) for "none", in d_ap's dtype).
struct TripletLossInput {
  at::Tensor d_ap, d_an, idx_n, out;
  int reduction;
};

inline TripletLossInput prepare_triplet_loss(const at::Tensor& d_ap, const at::Tensor& d_an, const at::Tensor& idx_n,
                                             const std::optional<double>& margin, std::string_view reduction,
                                             const char* op) {
  TripletLossInput in;
  in.reduction = parse_triplet_reduction(reduction, op);
  check_triplet_loss_args(d_ap, d_an, idx_n, margin, op);
  in.d_ap = d_ap.contiguous();
  in.d_an = d_an.contiguous();
  in.idx_n = idx_n.contiguous();
  in.out = in.reduction == kTripletNone ? at::empty({d_ap.size(0)}, d_ap.options()) : at::empty({}, d_ap.options());
  return in;
}

// The same for the backward: the checked, contiguous inputs and the two gradients to write.
struct TripletLossGradInput {
  at::Tensor grad, d_ap, d_an, idx_n, grad_ap, grad_an;
  int reduction;
};

inline TripletLossGradInput prepare_triplet_loss_backward(const at::Tensor& grad, const at::Tensor& d_ap,
                                                          const at::Tensor& d_an, const at::Tensor& idx_n,
                                                          const std::optional<double>& margin,
                                                          std::string_view reduction, const char* op) {
  TripletLossGradInput in;
  in.reduction = parse_triplet_reduction(reduction, op);
  check_triplet_loss_backward_args(grad, d_ap, d_an, idx_n, margin, in.reduction, op);
  in.grad = grad.contiguous();
  in.d_ap = d_ap.contiguous();
  in.d_an = d_an.contiguous();
  in.idx_n = idx_n.contiguous();
  in.grad_ap = at::empty_like(in.d_ap, at::MemoryFormat::Contiguous);
  in.grad_an = at::empty_like(in.d_an, at::MemoryFormat::Contiguous);
  return in;
}

}  // namespace bdb
