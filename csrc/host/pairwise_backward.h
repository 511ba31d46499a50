// The backward of pairwise_distance for every backend. Its output gradient is a dense N x M matrix,
// so the work is two GEMMs whatever one does; ATen's GEMM (BLAS on the CPU, cuBLAS on CUDA) is the
// fastest way to run them, and sharing the code keeps the backends in step.
//
// Precision: the GEMMs run in full fp32 (or fp64) whatever the user's TF32 setting. at::mm on CUDA
// follows torch.backends.cuda.matmul.allow_tf32 / torch.set_float32_matmul_precision, which would
// silently round the operands to TF32 (10-bit mantissa); at::NoTF32Guard turns that off for this
// thread only, for the duration of the two GEMMs. The CPU (and the emulator) never use TF32; the guard
// does not reach oneDNN, whose reduced-precision path under "medium" (bf16x3) stays within fp32's
// tolerance (tests/test_mining_paths.py).
//
//   W = grad / dist (0 where dist = 0, as torch.cdist), or 2 * grad for squared distances
//   grad_x = rowsum(W) * x - W @ y,   grad_y = colsum(W) * y - W^T @ x
#pragma once

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <tuple>

#include "mining_args.h"

namespace bdb {

inline std::tuple<at::Tensor, at::Tensor> pairwise_distance_backward_aten(const at::Tensor& grad,
                                                                          const at::Tensor& x,
                                                                          const at::Tensor& y,
                                                                          const at::Tensor& dist, bool squared,
                                                                          const char* op) {
  check_pairwise_backward_args(grad, x, y, dist, op);
  const auto acc = acc_type_of(x.scalar_type());
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
  const at::NoTF32Guard full_fp32;
  at::Tensor grad_x = xa * w.sum(1, /*keepdim=*/true) - at::mm(w, ya);
  at::Tensor grad_y = ya * w.sum(0).unsqueeze(1) - at::mm(w.t(), xa);
  return {grad_x.to(x.scalar_type()).contiguous(), grad_y.to(y.scalar_type()).contiguous()};
}

}  // namespace bdb
