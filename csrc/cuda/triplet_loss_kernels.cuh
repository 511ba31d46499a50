// Device code of triplet_loss_from_mined and its backward: one block each, over the N anchors that
// batch_hard_mine chose pairs for (N is the batch, at most a few thousand), so the loss of a training
// step is one launch forward and one backward instead of about twenty small ATen launches.
//
// The forward's sum runs in the fixed order of common/triplet_loss.h: thread t of the one block of
// kTripletReduceWidth threads sums anchors t, t + W, ... in order, then a pairwise tree in shared
// memory; no atomics, so the loss is bitwise reproducible and equal to the CPU kernel's.
#pragma once

#include "device_prelude.h"

#include <cstdint>

#include "../common/triplet_loss.h"

namespace bdb {

constexpr int kTripletLossThreads = kTripletReduceWidth;

// Launch shape of both kernels: a single block of kTripletLossThreads threads (the reduction order
// depends on the block being exactly that wide).
inline LaunchShape triplet_loss_launch() { return {1, kTripletLossThreads}; }

// out: a single value ("mean", "sum"), or N per-anchor losses ("none"). margin is unused when soft.
template <typename scalar_t>
__global__ __launch_bounds__(kTripletLossThreads) void triplet_loss_forward_kernel(
    const scalar_t* __restrict__ d_ap, const scalar_t* __restrict__ d_an, const int64_t* __restrict__ idx_n,
    int64_t N, bool soft, at::opmath_type<scalar_t> margin, int reduction, scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t totals[kTripletLossThreads];
  __shared__ int64_t counts[kTripletLossThreads];
  const int t = static_cast<int>(threadIdx.x);
  acc_t total(0);
  int64_t count = 0;
  for (int64_t i = t; i < N; i += kTripletLossThreads) {
    const acc_t loss = triplet_anchor_loss<acc_t>(d_ap, d_an, idx_n, i, soft, margin);
    if (reduction == kTripletNone) out[i] = static_cast<scalar_t>(loss);
    total += loss;
    count += idx_n[i] >= 0 ? 1 : 0;
  }
  if (reduction == kTripletNone) return;  // uniform over the block: no thread waits below
  totals[t] = total;
  counts[t] = count;
  __syncthreads();
  for (int stride = kTripletLossThreads / 2; stride > 0; stride /= 2) {
    if (t < stride) {
      totals[t] += totals[t + stride];
      counts[t] += counts[t + stride];
    }
    __syncthreads();
  }
  if (t == 0) out[0] = static_cast<scalar_t>(triplet_reduced_loss<acc_t>(totals[0], reduction, counts[0]));
}

// grad: the forward output's gradient, read at i * grad_stride (0: one value for "mean"/"sum").
// Writes d loss / d d_ap and d loss / d d_an of every anchor (0 for an anchor without a negative).
template <typename scalar_t>
__global__ __launch_bounds__(kTripletLossThreads) void triplet_loss_backward_kernel(
    const scalar_t* __restrict__ grad, int64_t grad_stride, const scalar_t* __restrict__ d_ap,
    const scalar_t* __restrict__ d_an, const int64_t* __restrict__ idx_n, int64_t N, bool soft,
    at::opmath_type<scalar_t> margin, int reduction, scalar_t* __restrict__ grad_ap,
    scalar_t* __restrict__ grad_an) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ int64_t counts[kTripletLossThreads];
  const int t = static_cast<int>(threadIdx.x);
  int64_t count = 0;
  if (reduction == kTripletMean) {  // uniform over the block
    for (int64_t i = t; i < N; i += kTripletLossThreads) count += idx_n[i] >= 0 ? 1 : 0;
    counts[t] = count;
    __syncthreads();
    for (int stride = kTripletLossThreads / 2; stride > 0; stride /= 2) {
      if (t < stride) counts[t] += counts[t + stride];
      __syncthreads();
    }
    count = counts[0];
  }
  for (int64_t i = t; i < N; i += kTripletLossThreads) {
    triplet_anchor_backward<acc_t>(grad, grad_stride, d_ap, d_an, idx_n, i, soft, margin, reduction, count, grad_ap,
                                   grad_an);
  }
}

}  // namespace bdb
