// The host-side names of cuda/runtime.h for the CPU emulation build (BDB_CUDA_EMULATION): the
// kernels register under the test-only library bdb_ext_emu for CPU tensors, launches run on the
// emulator (cuda_emulation.h), and the launch check raises what the emulator recorded.
#pragma once

#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include <ATen/core/Tensor.h>

#include <string>

#include "cuda_emulation.h"

namespace bdb {
using KernelStream = ::bdb_emu::Stream;
inline KernelStream current_kernel_stream() { return {}; }
// There is one emulated device, the CPU; nothing to switch.
struct KernelDeviceGuard {
  explicit KernelDeviceGuard(c10::Device) {}
};
// Where the kernels run: CPU memory. A CPU rect is read inside the kernel, as a CUDA rect is on a GPU.
inline bool on_kernel_device(const at::Tensor& t) { return t.is_cpu(); }
}  // namespace bdb

#define BDB_KERNEL_LAUNCH_CHECK()                                                    \
  do {                                                                               \
    const std::string bdb_emu_error_ = ::bdb_emu::get_last_error();                  \
    TORCH_CHECK(bdb_emu_error_.empty(), "CUDA emulation: ", bdb_emu_error_);         \
  } while (0)
#define BDB_KERNEL_LIBRARY bdb_ext_emu
#define BDB_KERNEL_DISPATCH_KEY CPU
