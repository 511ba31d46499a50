// Schemas of the test-only library bdb_ext_emu: the CUDA host code and kernels compiled by g++
// against the emulator (cuda_emulation.h) register their CPU-tensor kernels under it. Built by
// tests/emulated_library.py, never part of the wheel.
#include <torch/library.h>

#include "../schemas.h"

TORCH_LIBRARY(bdb_ext_emu, m) { bdb::define_op_schemas(m); }
