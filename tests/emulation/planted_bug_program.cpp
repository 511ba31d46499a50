// Runs planted::block_sum_kernel (planted_kernels.cuh) on the CPU emulator and compares it with a
// plain loop. Built plain, with -DBDB_PLANT_BUG_OFF_BY_ONE, and with -DBDB_PLANT_BUG_MISSING_SYNC
// under -fsanitize=thread by tests/emulation/test_planted_bugs.py and scripts/sanitize_emulated.sh:
// the correct kernel must pass cleanly, each planted bug must be caught.
// Exit status: 0 if the sums match, 1 on a mismatch (a sanitizer report exits non-zero itself).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "../../csrc/emulation/cuda_emulation.h"
#include "planted_kernels.cuh"

int main() {
  const int n = 1000;  // not a multiple of the block: the last block is partial
  const int threads = planted::kBlockSumThreads;
  const int blocks = (n + threads - 1) / threads;
#if defined(__SANITIZE_ADDRESS__)
  std::vector<float> in(n);  // exactly n: reading in[n] is a heap-buffer-overflow
#else
  std::vector<float> in(n + 1);
  in[n] = 1.0e6f;  // a sentinel one past the end: reading it makes the sum wrong
#endif
  for (int i = 0; i < n; ++i) in[i] = static_cast<float>((i * 7) % 13) - 6.0f;
  int mismatches = 0;
  for (int repeat = 0; repeat < 3; ++repeat) {
    std::vector<float> out(blocks, -1.0f);
    bdb_emu::launch(planted::block_sum_kernel, dim3(blocks), dim3(threads), bdb_emu::Stream{}, in.data(),
                    out.data(), n);
    if (const std::string e = bdb_emu::get_last_error(); !e.empty()) {
      std::printf("emulator error: %s\n", e.c_str());
      return 1;
    }
    for (int b = 0; b < blocks; ++b) {
      float want = 0.0f;
      for (int i = b * threads; i < std::min(n, (b + 1) * threads); ++i) want += in[i];
      if (out[b] != want) {
        std::printf("block_sum mismatch: repeat %d block %d: got %g, want %g\n", repeat, b, out[b], want);
        ++mismatches;
      }
    }
  }
  bdb_emu::shutdown_thread_pool();
  std::printf("block_sum: %s\n", mismatches == 0 ? "all sums match" : "WRONG RESULT");
  return mismatches == 0 ? 0 : 1;
}
