// Argument checks shared by the CPU and CUDA host code of pairwise_distance and batch_hard_mine, so
// both backends reject the same inputs with the same messages.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "tensor_checks.h"

namespace bdb {

// The accumulation dtype of the mining ops: float64 for float64 inputs, float32 otherwise (fp16 and
// bf16 accumulate in fp32, as at::opmath_type). One definition for the CPU and CUDA host code.
inline at::ScalarType acc_type_of(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

inline void check_embedding_dtype(const at::Tensor& x, const char* name, const char* op) {
  const auto dt = x.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble || dt == at::kHalf || dt == at::kBFloat16, op, ": ", name,
              " must be float32, float64, float16 or bfloat16, got ", dt);
}

inline void check_embeddings(const at::Tensor& x, const char* name, const char* op) {
  TORCH_CHECK(x.dim() == 2, op, ": ", name, " must be a 2-D tensor (N, D) of embeddings, got ", x.dim(),
              "-D with shape ", x.sizes());
  check_embedding_dtype(x, name, op);
}

inline void check_pairwise_args(const at::Tensor& x, const at::Tensor& y, const char* op) {
  check_embeddings(x, "x", op);
  check_embeddings(y, "y", op);
  TORCH_CHECK(x.scalar_type() == y.scalar_type(), op, ": x and y must have the same dtype, got ",
              x.scalar_type(), " and ", y.scalar_type());
  check_on_device(y, "y", x.device(), "x", op);
  TORCH_CHECK(x.size(1) == y.size(1), op, ": x and y must have the same embedding size D, got x ", x.sizes(),
              " and y ", y.sizes());
}

inline void check_pairwise_backward_args(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& y,
                                         const at::Tensor& dist, const char* op) {
  check_pairwise_args(x, y, op);
  TORCH_CHECK(grad.dim() == 2 && grad.size(0) == x.size(0) && grad.size(1) == y.size(0), op,
              ": grad must have shape (N, M) = (", x.size(0), ", ", y.size(0), "), got ", grad.sizes());
  TORCH_CHECK(dist.sizes() == grad.sizes(), op, ": dist must have the shape of grad ", grad.sizes(), ", got ",
              dist.sizes());
  check_on_device(grad, "grad", x.device(), "x", op);
  check_on_device(dist, "dist", x.device(), "x", op);
  check_embedding_dtype(grad, "grad", op);
  TORCH_CHECK(grad.scalar_type() == x.scalar_type() && dist.scalar_type() == x.scalar_type(), op,
              ": grad and dist must have x's dtype ", x.scalar_type(), ", got ", grad.scalar_type(), " and ",
              dist.scalar_type());
}

// labels: int64 (N,) on x's device. Any int64 values are allowed (they are only compared).
inline void check_labels(const at::Tensor& labels, const at::Tensor& x, const char* op) {
  TORCH_CHECK(labels.scalar_type() == at::kLong, op, ": labels must be an int64 tensor, got dtype ",
              labels.scalar_type());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == x.size(0), op, ": labels must have shape (N,) = (",
              x.size(0), ",) to match x ", x.sizes(), ", got shape ", labels.sizes());
  check_on_device(labels, "labels", x.device(), "x", op);
}

inline void check_mine_args(const at::Tensor& x, const at::Tensor& labels, const char* op) {
  check_embeddings(x, "x", op);
  check_labels(labels, x, op);
}

inline void check_mine_backward_args(const at::Tensor& grad_ap, const at::Tensor& grad_an, const at::Tensor& x,
                                     const at::Tensor& idx_p, const at::Tensor& idx_n, const at::Tensor& d_ap,
                                     const at::Tensor& d_an, const char* op, IndexCheck indices) {
  check_embeddings(x, "x", op);
  const int64_t N = x.size(0);
  auto vec = [&](const at::Tensor& t, const char* name, bool is_index) {
    TORCH_CHECK(t.dim() == 1 && t.size(0) == N, op, ": ", name, " must have shape (N,) = (", N, ",), got ",
                t.sizes());
    check_on_device(t, name, x.device(), "x", op);
    if (is_index) {
      TORCH_CHECK(t.scalar_type() == at::kLong, op, ": ", name, " must be int64, got ", t.scalar_type());
    } else {
      TORCH_CHECK(t.scalar_type() == x.scalar_type(), op, ": ", name, " must have x's dtype ", x.scalar_type(),
                  ", got ", t.scalar_type());
    }
  };
  vec(grad_ap, "grad_ap", false);
  vec(grad_an, "grad_an", false);
  vec(idx_p, "idx_p", true);
  vec(idx_n, "idx_n", true);
  vec(d_ap, "d_ap", false);
  vec(d_an, "d_an", false);
  // The kernels index rows of x with these.
  if (indices == IndexCheck::kOnHost) {
    check_index_range(idx_p, 0, N, "idx_p", op);
    check_index_range(idx_n, -1, N, "idx_n", op);
  }
}

// What _batch_hard_mine_backward works on, for both backends: the checked arguments, contiguous.
struct MineGradInput {
  at::Tensor grad_ap, grad_an, x, idx_p, idx_n, d_ap, d_an;
};

inline MineGradInput prepare_mine_backward(const at::Tensor& grad_ap, const at::Tensor& grad_an, const at::Tensor& x,
                                           const at::Tensor& idx_p, const at::Tensor& idx_n, const at::Tensor& d_ap,
                                           const at::Tensor& d_an, const char* op, IndexCheck indices) {
  check_mine_backward_args(grad_ap, grad_an, x, idx_p, idx_n, d_ap, d_an, op, indices);
  return {grad_ap.contiguous(), grad_an.contiguous(), x.contiguous(),   idx_p.contiguous(),
          idx_n.contiguous(),   d_ap.contiguous(),    d_an.contiguous()};
}

}  // namespace bdb
