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
  // Returns (pooled (N, C), argmax (N, C) int64 for "max", an empty tensor for "avg").
  m.def("drop_pool(Tensor x, Tensor rect, str mode) -> (Tensor, Tensor)");
  m.def(
      "_drop_pool_backward(Tensor grad_out, Tensor argmax, Tensor rect, str mode, SymInt[] input_size, "
      "bool channels_last) -> Tensor");
}

}  // namespace bdb
