// The backward of pairwise_distance for every backend. Its output gradient is a dense N x M matrix,
// so the work is two GEMMs whatever one does; ATen's GEMM (BLAS on the CPU, cuBLAS on CUDA) is the
// fastest way to run them, and sharing the code keeps the backends in step.
//
//   W = grad / dist (0 where dist = 0, as torch.cdist), or 2 * grad for squared distances
//   grad_x = rowsum(W) * x - W @ y,   grad_y = colsum(W) * y - W^T @ x
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "mining_args.h"

namespace bdb {

inline std::tuple<at::Tensor, at::Tensor> pairwise_distance_backward_aten(const at::Tensor& grad,
                                                                          const at::Tensor& x,
                                                                          const at::Tensor& y,
                                                                          const at::Tensor& dist, bool squared,
                                                                          const char* op) {
  check_pairwise_backward_args(grad, x, y, dist, op);
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor g = grad.to(acc);
  at::Tensor w;
  if (squared) {
    w = g * 2;
  } else {
    const at::Tensor d = dist.to(acc);
    w = at::where(d > 0, g / d, at::zeros({}, g.options()));
  }
  const at::Tensor xa = x.to(acc);
  const at::Tensor ya = y.to(acc);
  at::Tensor grad_x = xa * w.sum(1, /*keepdim=*/true) - at::mm(w, ya);
  at::Tensor grad_y = ya * w.sum(0).unsqueeze(1) - at::mm(w.t(), xa);
  return {grad_x.to(x.scalar_type()).contiguous(), grad_y.to(y.scalar_type()).contiguous()};
}

}  // namespace bdb
