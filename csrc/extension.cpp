// The bdb_ext._C module: op schemas for the bdb_ext namespace and build_info(). Kernels register
// themselves per backend from cpu/ and cuda/.
#include <torch/extension.h>

#include "schemas.h"

#ifndef BDB_TORCH_VERSION
#error "setup.py passes BDB_TORCH_VERSION, the torch version this extension is built against"
#endif
#ifndef BDB_CUDA_ARCHS
#define BDB_CUDA_ARCHS ""
#endif

TORCH_LIBRARY(bdb_ext, m) { bdb::define_op_schemas(m); }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.doc() = "bdb_ext compiled ops (registered under torch.ops.bdb_ext)";
  module.def("build_info", [] {
    pybind11::dict info;
    info["torch_version"] = BDB_TORCH_VERSION;
#if defined(BDB_WITH_CUDA)
    info["cuda"] = true;
    info["cuda_version"] = BDB_CUDA_VERSION;
    info["cuda_archs"] = BDB_CUDA_ARCHS;
#else
    info["cuda"] = false;
    info["cuda_version"] = pybind11::none();
    info["cuda_archs"] = "";
#endif
#if defined(BDB_DEBUG_BUILD)
    info["debug"] = true;
#else
    info["debug"] = false;
#endif
    return info;
  });
}
