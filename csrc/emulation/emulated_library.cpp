// Schemas of the test-only library bdb_ext_emu: the CUDA host code and kernels compiled by g++
// against the emulator (cuda_emulation.h) register their CPU-tensor kernels under it. Built by
// tests/emulated_library.py, never part of the wheel.
#include <torch/library.h>

#include <cstdint>
#include <string>

#include "../schemas.h"
#include "cuda_emulation.h"

namespace {

// The emulator's launch log for tests/emulation/test_launch_shapes.py. mode: 1 records and runs
// each launch, 2 records it only (full-size problems); 0 stops recording.
void start_launch_recording(int64_t mode) {
  TORCH_CHECK(mode == 1 || mode == 2, "bdb_ext_emu::_start_launch_recording: mode must be 1 (record and run) or ",
              "2 (record only), got ", mode);
  bdb_emu::start_launch_recording(static_cast<bdb_emu::detail::LaunchRecording>(mode));
}

// One line per launch since the start, in launch order: "kernel<TAB>grid.x grid.y grid.z<TAB>block.x block.y
// block.z", the kernel demangled with its template arguments.
std::string stop_launch_recording() {
  std::string out;
  for (const auto& r : bdb_emu::stop_launch_recording()) {
    out += r.kernel + "\t" + std::to_string(r.grid.x) + " " + std::to_string(r.grid.y) + " " +
           std::to_string(r.grid.z) + "\t" + std::to_string(r.block.x) + " " + std::to_string(r.block.y) + " " +
           std::to_string(r.block.z) + "\n";
  }
  return out;
}

}  // namespace

TORCH_LIBRARY(bdb_ext_emu, m) {
  bdb::define_op_schemas(m);
  m.def("_start_launch_recording(int mode) -> ()", &start_launch_recording);
  m.def("_stop_launch_recording() -> str", &stop_launch_recording);
}
