// Device and index checks shared by every op's host code (CPU and CUDA), so that all entry points
// refuse a misplaced argument or an out-of-range index with the same one-line message instead of
// reading another device's memory or writing out of bounds.
//
// A meta tensor never reaches this code: the dispatcher sends any call with a meta argument to the
// op's fake kernel (bdb_ext/ops/_devices.py checks devices there with the same rules).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdint>

namespace bdb {

// `t` (argument `name` of `op`) must be on `device`, the device of the op's main input
// (`device_name`, e.g. "x"); with cpu_ok, a CPU tensor is accepted as well (the host reads it).
inline void check_on_device(const at::Tensor& t, const char* name, c10::Device device, const char* device_name,
                            const char* op, bool cpu_ok = false) {
  if (t.device() == device || (cpu_ok && t.is_cpu())) return;
  TORCH_CHECK(false, op, ": ", name, " must be on ", cpu_ok ? "the CPU or on " : "", device_name, "'s device (",
              device, "), got ", t.device());
}

// Who checks the range of an index tensor (argmax, idx_p, idx_n): the host, before a CPU kernel reads it,
// or the device kernel that reads it (a device-side assert, with no host sync). The CUDA entry points say
// kInKernel also when the emulator runs them on CPU tensors, so the emulated suite tests the kernels' own
// check rather than a host check the real GPU never runs.
enum class IndexCheck { kOnHost, kInKernel };

// Every value of the int64 tensor `t` (argument `name` of `op`) lies in [lo, hi). Run on CPU tensors
// only (a CUDA index is checked where the kernel reads it, without a host sync).
inline void check_index_range(const at::Tensor& t, int64_t lo, int64_t hi, const char* name, const char* op) {
  TORCH_CHECK(t.is_cpu(), "bdb_ext internal error: check_index_range on a ", t.device(), " tensor");
  const at::Tensor c = t.contiguous();
  const int64_t* v = c.const_data_ptr<int64_t>();
  const int64_t n = c.numel();
  for (int64_t i = 0; i < n; ++i) {
    if (v[i] >= lo && v[i] < hi) continue;
    TORCH_CHECK(false, op, ": ", name, " must hold indices in [", lo, ", ", hi, "), got ", v[i],
                " at flat position ", i);
  }
}

}  // namespace bdb
