// Every bdb_ext op schema, in one place. The real library (TORCH_LIBRARY(bdb_ext)) and the
// test-only CUDA emulation library (TORCH_LIBRARY(bdb_ext_emu)) both define their ops from here,
// so the emulated kernels are tested against exactly the public signatures.
#pragma once

#include <torch/library.h>

namespace bdb {

inline void define_op_schemas(torch::Library& m) {
  // rect: int64 [top, left, height, width], on the CPU or on x's device.
  m.def("batch_drop_block(Tensor x, Tensor rect) -> Tensor");
  m.def("_batch_drop_block_backward(Tensor grad_y, Tensor rect) -> Tensor");
  // Returns (pooled (N, C), argmax (N, C) int64 for "max", an empty (0, 0) tensor for "avg"). with_argmax=False:
  // the kernel skips the argmax (empty, as for "avg") unless the call records a derivative, which needs it.
  m.def("drop_pool(Tensor x, Tensor rect, str mode, bool with_argmax=True) -> (Tensor, Tensor)");
  m.def(
      "_drop_pool_backward(Tensor grad_out, Tensor argmax, Tensor rect, str mode, SymInt[] input_size, "
      "bool channels_last) -> Tensor");
  // Euclidean (or squared) distances (N, M) between the rows of x (N, D) and y (M, D).
  m.def("pairwise_distance(Tensor x, Tensor y, bool squared) -> Tensor");
  m.def("_pairwise_distance_backward(Tensor grad, Tensor x, Tensor y, Tensor dist, bool squared) -> (Tensor, Tensor)");
  // Returns (d_ap (N,), d_an (N,), idx_p (N,) int64, idx_n (N,) int64); labels: int64 (N,).
  m.def("batch_hard_mine(Tensor x, Tensor labels) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "_batch_hard_mine_backward(Tensor grad_ap, Tensor grad_an, Tensor x, Tensor idx_p, Tensor idx_n, "
      "Tensor d_ap, Tensor d_an) -> Tensor");
  // The batch-hard triplet loss on batch_hard_mine's outputs: softplus(d_ap - d_an) (margin None) or
  // relu(d_ap - d_an + margin) per anchor, 0 for anchors without a negative (idx_n < 0); reduction
  // "mean" (over the anchors with a negative; 0 when none), "sum" -> 0-dim, or "none" -> (N,).
  m.def("triplet_loss_from_mined(Tensor d_ap, Tensor d_an, Tensor idx_n, float? margin, str reduction) -> Tensor");
  m.def(
      "_triplet_loss_from_mined_backward(Tensor grad, Tensor d_ap, Tensor d_an, Tensor idx_n, float? margin, "
      "str reduction) -> (Tensor, Tensor)");
}

}  // namespace bdb
