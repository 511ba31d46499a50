// The per-anchor math of the batch-hard triplet loss on mined distances, shared by the CPU kernel,
// the CUDA kernels and the emulator so that all of them compute the same values, gradients and
// reduction order.
//
// Anchor i with a negative (idx_n[i] >= 0) has gap = d_ap[i] - d_an[i] and loss
//   soft margin (margin None): softplus(gap) = log1p(exp(gap)), or gap itself above
//                              kSoftplusThreshold (torch's softplus with beta 1, threshold 20);
//   hard margin:               relu(gap + margin).
// An anchor without a negative (d_an = inf) contributes 0 and gets no gradient: its d_an is never
// read, so no inf or NaN enters the arithmetic.
#pragma once

#include <cmath>
#include <cstdint>

#include "macros.h"

namespace bdb {

// The reduction argument of the loss ops ("mean", "sum", "none"), as the kernels receive it.
enum TripletReduction : int { kTripletMean = 0, kTripletSum = 1, kTripletNone = 2 };

// torch.nn.functional.softplus's default threshold: above it softplus(x) = x and its slope is 1.
constexpr double kSoftplusThreshold = 20.0;

// The fixed order of the forward's sum over anchors (and of the backward's count of anchors with a
// negative): kTripletReduceWidth partials, partial t summing anchors t, t + W, t + 2W, ... in
// increasing order, then a pairwise tree (partial t += partial t + s for s = W/2, W/4, ..., 1). The
// CUDA kernels run it with one block of W threads, the CPU kernel runs the same order serially, so
// both give bitwise the same sum.
constexpr int kTripletReduceWidth = 256;

// The loss of anchor i of the mined arrays, in the accumulation type. margin is ignored when soft.
template <typename acc_t, typename scalar_t>
BDB_INLINE acc_t triplet_anchor_loss(const scalar_t* d_ap, const scalar_t* d_an, const int64_t* idx_n, int64_t i,
                                     bool soft, acc_t margin) {
  if (idx_n[i] < 0) return acc_t(0);  // no negative: d_an[i] is inf and is not read
  const acc_t gap = static_cast<acc_t>(d_ap[i]) - static_cast<acc_t>(d_an[i]);
  if (soft) return gap > acc_t(kSoftplusThreshold) ? gap : std::log1p(std::exp(gap));
  const acc_t z = gap + margin;
  return z <= acc_t(0) ? acc_t(0) : z;  // relu; NaN propagates as torch.relu
}

// d loss / d d_ap of one anchor scaled by the incoming gradient g (d loss / d d_an is its negative),
// in the order torch's softplus_backward and threshold_backward compute it.
template <typename acc_t>
BDB_INLINE acc_t triplet_anchor_grad(acc_t g, acc_t d_ap, acc_t d_an, bool soft, acc_t margin) {
  const acc_t gap = d_ap - d_an;
  if (soft) {
    if (gap > acc_t(kSoftplusThreshold)) return g;
    const acc_t z = std::exp(gap);
    return g * z / (z + acc_t(1));
  }
  const acc_t z = gap + margin;
  return z <= acc_t(0) ? acc_t(0) : g;  // threshold_backward on relu's result
}

// The gradient that reaches each anchor's loss from the reduced loss's gradient: grad itself for
// "sum" (and per anchor for "none"), grad / (anchors with a negative, at least 1) for "mean".
template <typename acc_t>
BDB_INLINE acc_t triplet_reduced_grad(acc_t grad, int reduction, int64_t count) {
  if (reduction != kTripletMean) return grad;
  return grad / static_cast<acc_t>(count > 0 ? count : 1);
}

// The backward of anchor i: d loss / d d_ap[i] and d loss / d d_an[i] from the forward output's gradient
// (read at i * grad_stride: 0 for one value) and, for "mean", the number of anchors with a negative. An
// anchor without a negative gets 0 and its d_an[i] (inf) is not read.
template <typename acc_t, typename scalar_t>
BDB_INLINE void triplet_anchor_backward(const scalar_t* grad, int64_t grad_stride, const scalar_t* d_ap,
                                        const scalar_t* d_an, const int64_t* idx_n, int64_t i, bool soft,
                                        acc_t margin, int reduction, int64_t count, scalar_t* grad_ap,
                                        scalar_t* grad_an) {
  acc_t gi(0);
  if (idx_n[i] >= 0) {
    const acc_t g = triplet_reduced_grad<acc_t>(static_cast<acc_t>(grad[i * grad_stride]), reduction, count);
    gi = triplet_anchor_grad<acc_t>(g, static_cast<acc_t>(d_ap[i]), static_cast<acc_t>(d_an[i]), soft, margin);
  }
  grad_ap[i] = static_cast<scalar_t>(gi);
  grad_an[i] = static_cast<scalar_t>(-gi);
}

// The reduced loss from the tree's total and count: the total for "sum", total / max(count, 1)
// for "mean" (0 when no anchor has a negative: the total is 0 then).
template <typename acc_t>
BDB_INLINE acc_t triplet_reduced_loss(acc_t total, int reduction, int64_t count) {
  if (reduction != kTripletMean) return total;
  return total / static_cast<acc_t>(count > 0 ? count : 1);
}

}  // namespace bdb
