// Self-test of the CUDA emulation harness (csrc/emulation/cuda_emulation.h): barriers, warp
// shuffles and votes, atomics, early-returning threads, error reports and launch speed. A plain C++
// program with no torch, so it also runs under ThreadSanitizer and AddressSanitizer
// (scripts/sanitize_emulated.sh).
//
//   harness_selftest --list        the case names
//   harness_selftest all           every case
//   harness_selftest CASE [CASE..] the named cases
// Prints PASS/FAIL per case; exits 1 if any failed.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "../../csrc/emulation/cuda_emulation.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SELFTEST_SANITIZED 1
#else
#define SELFTEST_SANITIZED 0
#endif

namespace {

int g_failures = 0;

#define EXPECT(cond, ...)                                          \
  do {                                                             \
    if (!(cond)) {                                                 \
      ++g_failures;                                                \
      std::printf("    expectation failed at line %d: ", __LINE__); \
      std::printf(__VA_ARGS__);                                    \
      std::printf("\n");                                           \
      return;                                                      \
    }                                                              \
  } while (0)

constexpr bdb_emu::Stream kStream{};

// Launches and expects no error.
template <class... P, class... A>
void run(void (*kernel)(P...), dim3 grid, dim3 block, A&&... args) {
  ::bdb_emu::launch(kernel, grid, block, kStream, std::forward<A>(args)...);
  const std::string e = ::bdb_emu::get_last_error();
  if (!e.empty()) {
    ++g_failures;
    std::printf("    unexpected emulator error: %s\n", e.c_str());
  }
}

// Launches and expects an error whose message contains `needle`.
template <class... P, class... A>
void run_expecting_error(const char* needle, void (*kernel)(P...), dim3 grid, dim3 block, A&&... args) {
  ::bdb_emu::launch(kernel, grid, block, kStream, std::forward<A>(args)...);
  const std::string e = ::bdb_emu::get_last_error();
  if (e.find(needle) == std::string::npos) {
    ++g_failures;
    std::printf("    expected an emulator error containing \"%s\", got \"%s\"\n", needle, e.c_str());
  } else {
    std::printf("    reported as expected: %s\n", e.c_str());
  }
}

// ----------------------------------------------------------------------------------------------
__global__ void iota_kernel(int* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = i;
}

void case_launch_speed() {
  const int n = 64 * 256;
  std::vector<int> out(n, -1);
  run(iota_kernel, dim3(64), dim3(256), out.data(), n);  // warm the pool
  const auto t0 = std::chrono::steady_clock::now();
  run(iota_kernel, dim3(64), dim3(256), out.data(), n);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("    64 x 256 launch: %.1f ms\n", s * 1e3);
  for (int i = 0; i < n; ++i) EXPECT(out[i] == i, "out[%d] = %d", i, out[i]);
  // Well under a second with either executor (fibers take ~20 ms, the thread pool ~0.1-0.2 s).
  if (!SELFTEST_SANITIZED) {
    const double limit = bdb_emu::detail::use_fibers() ? 0.25 : 0.8;
    EXPECT(s < limit, "a 64 x 256 launch took %.3f s (limit %.2f s)", s, limit);
  }
}

__global__ void indices_kernel(int* out) {
  const int block = static_cast<int>((blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x);
  const int t = static_cast<int>((threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x);
  const int per_block = static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
  int* o = out + 4 * (block * per_block + t);
  o[0] = block;
  o[1] = t;
  o[2] = static_cast<int>(threadIdx.x + 10 * threadIdx.y + 100 * threadIdx.z);
  o[3] = static_cast<int>(blockIdx.x + 10 * blockIdx.y + 100 * blockIdx.z);
}

void case_indices() {
  const dim3 grid(3, 2, 2), block(5, 3, 2);
  const int blocks = 12, per_block = 30;
  std::vector<int> out(4 * blocks * per_block, -1);
  run(indices_kernel, grid, block, out.data());
  for (int b = 0; b < blocks; ++b) {
    for (int t = 0; t < per_block; ++t) {
      const int* o = &out[4 * (b * per_block + t)];
      EXPECT(o[0] == b && o[1] == t, "block %d thread %d wrote %d %d", b, t, o[0], o[1]);
      EXPECT(o[2] == t % 5 + 10 * ((t / 5) % 3) + 100 * (t / 15), "threadIdx of thread %d", t);
      EXPECT(o[3] == b % 3 + 10 * ((b / 3) % 2) + 100 * (b / 6), "blockIdx of block %d", b);
    }
  }
}

// ----------------------------------------------------------------------------------------------
// Threads return at different points; the rest keep synchronising without deadlock.
__global__ void early_return_kernel(int* out, int rounds) {
  __shared__ int tile[256];
  const int t = static_cast<int>(threadIdx.x);
  if (t % 3 == 0) return;
  for (int r = 0; r < rounds; ++r) {
    if (t % 7 == r) return;  // a few more leave at each round
    tile[t] = t + 1000 * r;
    __syncthreads();
    const int peer = (t + 1) % static_cast<int>(blockDim.x);
    out[t] = tile[peer];  // valid only if the peer wrote this round; checked on the host
    __syncthreads();
  }
}

void case_syncthreads_early_return() {
  std::vector<int> out(256, -1);
  run(early_return_kernel, dim3(2), dim3(256), out.data(), 5);
  // Thread t survives rounds r < min(5, (t%7)+...) ; check the last round both t and peer survived.
  auto alive_rounds = [](int t) { return t % 3 == 0 ? 0 : std::min(5, t % 7); };
  for (int t = 0; t < 256; ++t) {
    const int peer = (t + 1) % 256;
    const int r_t = alive_rounds(t), r_p = alive_rounds(peer);
    const int last = std::min(r_t, r_p) - 1;  // the last round both took part in
    if (r_t == 0 || last < 0) continue;
    if (r_t == r_p) {
      EXPECT(out[t] == peer + 1000 * last, "thread %d read %d, want %d", t, out[t], peer + 1000 * last);
    }
  }
}

__global__ void sync_reductions_kernel(int* out) {
  const int t = static_cast<int>(threadIdx.x);
  if (t >= 200) return;  // 200 live threads
  const int count = __syncthreads_count(t % 4 == 0);
  const int all = __syncthreads_and(t < 1000);
  const int none = __syncthreads_and(t < 100);
  const int any = __syncthreads_or(t == 150);
  const int nothing = __syncthreads_or(t > 5000);
  if (t == 0) {
    out[0] = count;
    out[1] = all;
    out[2] = none;
    out[3] = any;
    out[4] = nothing;
  }
}

void case_syncthreads_count_and_or() {
  std::vector<int> out(5, -1);
  run(sync_reductions_kernel, dim3(3), dim3(256), out.data());
  EXPECT(out[0] == 50, "__syncthreads_count = %d, want 50", out[0]);
  EXPECT(out[1] == 1 && out[2] == 0, "__syncthreads_and = %d, %d", out[1], out[2]);
  EXPECT(out[3] == 1 && out[4] == 0, "__syncthreads_or = %d, %d", out[3], out[4]);
}

// ----------------------------------------------------------------------------------------------
struct Pair16 {
  uint16_t a;
};
struct Wide {
  double a, b;
};

// out[(op * 32 + lane)] for every shuffle variant, from 64 threads (two warps).
template <class T>
__global__ void shuffle_kernel(T* out, int width, int delta) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int warp = static_cast<int>(threadIdx.x / 32);
  T v;
  std::memset(&v, 0, sizeof(v));
  if constexpr (std::is_same_v<T, Pair16>) {
    v.a = static_cast<uint16_t>(lane + 100 * warp);
  } else if constexpr (std::is_same_v<T, Wide>) {
    v.a = lane + 100 * warp;
    v.b = -v.a;
  } else {
    v = static_cast<T>(lane + 100 * warp);
  }
  T* o = out + warp * 4 * 32;
  o[0 * 32 + lane] = __shfl_sync(0xffffffffu, v, delta, width);
  o[1 * 32 + lane] = __shfl_up_sync(0xffffffffu, v, static_cast<unsigned>(delta), width);
  o[2 * 32 + lane] = __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(delta), width);
  o[3 * 32 + lane] = __shfl_xor_sync(0xffffffffu, v, delta, width);
}

template <class T>
double value_of(const T& v) {
  if constexpr (std::is_same_v<T, Pair16>) {
    return v.a;
  } else if constexpr (std::is_same_v<T, Wide>) {
    return v.b == -v.a ? v.a : -1e9;
  } else {
    return static_cast<double>(v);
  }
}

// Expected source lanes, written out from the CUDA programming guide's description.
int want_idx(int lane, int src, int width) { return (lane / width) * width + src % width; }
int want_up(int lane, int d, int width) { return (lane % width) >= d ? lane - d : lane; }
int want_down(int lane, int d, int width) { return (lane % width) + d < width ? lane + d : lane; }
int want_xor(int lane, int m, int width) {
  const int j = lane ^ m;
  return j / width > lane / width ? lane : j;  // a later segment gives the caller its own value
}

template <class T>
void check_shuffles(const char* type) {
  for (int width : {1, 2, 4, 8, 16, 32}) {
    for (int delta : {0, 1, 3, 4, 8, 16, 31}) {
      std::vector<T> out(2 * 4 * 32);
      run(shuffle_kernel<T>, dim3(1), dim3(64), out.data(), width, delta);
      for (int warp = 0; warp < 2; ++warp) {
        for (int lane = 0; lane < 32; ++lane) {
          const int want[4] = {want_idx(lane, delta, width), want_up(lane, delta, width),
                               want_down(lane, delta, width), want_xor(lane, delta, width)};
          for (int op = 0; op < 4; ++op) {
            const double got = value_of(out[warp * 128 + op * 32 + lane]);
            EXPECT(got == want[op] + 100 * warp, "%s op %d width %d delta %d lane %d: got %g, want %d", type, op,
                   width, delta, lane, got, want[op] + 100 * warp);
          }
        }
      }
    }
  }
}

void case_shuffles() {
  check_shuffles<int>("int");
  check_shuffles<unsigned>("unsigned");
  check_shuffles<long long>("long long");
  check_shuffles<float>("float");
  check_shuffles<double>("double");
  check_shuffles<Pair16>("2-byte struct");
  check_shuffles<Wide>("16-byte struct");
}

// The usual warp reductions over 96 threads (3 warps), and an inclusive scan with __shfl_up_sync.
__global__ void warp_reduce_kernel(float* sums, int* scans, int* maxes) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  float v = static_cast<float>(threadIdx.x);
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (lane == 0) sums[threadIdx.x / 32] = v;
  int m = static_cast<int>((threadIdx.x * 37) % 101);
  for (int offset = 16; offset > 0; offset /= 2) m = max(m, __shfl_xor_sync(0xffffffffu, m, offset));
  maxes[threadIdx.x] = m;
  int s = 1;
  for (int offset = 1; offset < 8; offset *= 2) {
    const int other = __shfl_up_sync(0xffffffffu, s, offset, 8);
    if (lane % 8 >= offset) s += other;
  }
  scans[threadIdx.x] = s;
}

void case_warp_reductions() {
  std::vector<float> sums(3);
  std::vector<int> scans(96), maxes(96);
  run(warp_reduce_kernel, dim3(1), dim3(96), sums.data(), scans.data(), maxes.data());
  for (int w = 0; w < 3; ++w) {
    float want = 0;
    int want_max = 0;
    for (int t = 32 * w; t < 32 * w + 32; ++t) {
      want += static_cast<float>(t);
      want_max = std::max(want_max, (t * 37) % 101);
    }
    EXPECT(sums[w] == want, "warp %d sum %g, want %g", w, sums[w], want);
    for (int t = 32 * w; t < 32 * w + 32; ++t) EXPECT(maxes[t] == want_max, "thread %d max %d", t, maxes[t]);
  }
  for (int t = 0; t < 96; ++t) EXPECT(scans[t] == t % 8 + 1, "scan[%d] = %d", t, scans[t]);
}

// The two halves of a warp run different collectives with disjoint masks at the same time.
__global__ void split_warp_kernel(int* out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (lane < 16) {
    out[lane] = __shfl_xor_sync(0x0000ffffu, lane, 1);
  } else {
    out[lane] = static_cast<int>(__ballot_sync(0xffff0000u, lane % 2 == 0));
    __syncwarp(0xffff0000u);
  }
}

void case_split_warp() {
  std::vector<int> out(32, -1);
  run(split_warp_kernel, dim3(1), dim3(32), out.data());
  for (int l = 0; l < 16; ++l) EXPECT(out[l] == (l ^ 1), "lane %d got %d", l, out[l]);
  for (int l = 16; l < 32; ++l) EXPECT(static_cast<unsigned>(out[l]) == 0x55550000u, "lane %d ballot 0x%08x", l, out[l]);
}

__global__ void vote_kernel(unsigned* out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (threadIdx.x >= 40) return;  // warp 1 keeps lanes 0..7 only
  const unsigned live = static_cast<unsigned>(threadIdx.x < 32 ? 0xffffffffu : 0xffu);
  __syncwarp(live);
  const unsigned ballot = __ballot_sync(live, lane % 3 == 0);
  const int any = __any_sync(live, lane == 5);
  const int all = __all_sync(live, lane < 100);
  const int all_not = __all_sync(live, lane != 2);
  if (lane == 0) {
    unsigned* o = out + 4 * (threadIdx.x / 32);
    o[0] = ballot;
    o[1] = static_cast<unsigned>(any);
    o[2] = static_cast<unsigned>(all);
    o[3] = static_cast<unsigned>(all_not);
  }
}

void case_votes() {
  std::vector<unsigned> out(8, 7);
  run(vote_kernel, dim3(1), dim3(64), out.data());
  EXPECT(out[0] == 0x49249249u, "ballot warp 0 = 0x%08x", out[0]);
  EXPECT(out[4] == 0x49u, "ballot warp 1 = 0x%08x", out[4]);
  EXPECT(out[1] == 1 && out[2] == 1 && out[3] == 0, "warp 0 any/all = %u %u %u", out[1], out[2], out[3]);
  EXPECT(out[5] == 1 && out[6] == 1 && out[7] == 0, "warp 1 any/all = %u %u %u", out[5], out[6], out[7]);
}

// ----------------------------------------------------------------------------------------------
struct Counters {
  int i;
  unsigned u;
  unsigned long long ull;
  long long ll;
  float f;
  double d;
  int imax, imin;
  float fmax, fmin;
  long long llmax;
  double dmin;
  int cas_counter;
  int exch;
  unsigned inc;
  int lock_protected;
};

__global__ void atomics_kernel(Counters* c) {
  const int g = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  atomicAdd(&c->i, 1);
  atomicAdd(&c->u, 2u);
  atomicAdd(&c->ull, 3ull);
  atomicAdd(&c->ll, -1);
  atomicAdd(&c->f, 0.5f);
  atomicAdd(&c->d, 0.25);
  atomicMax(&c->imax, g);
  atomicMin(&c->imin, -g);
  atomicMax(&c->fmax, static_cast<float>(g) * 0.5f);
  atomicMin(&c->fmin, -static_cast<float>(g));
  atomicMax(&c->llmax, static_cast<long long>(g) << 33);
  atomicMin(&c->dmin, static_cast<double>(g) - 10.0);
  int old = c->cas_counter;  // a racy first read is fine: CAS validates it
  old = atomicAdd(&c->cas_counter, 0);
  for (;;) {
    const int seen = atomicCAS(&c->cas_counter, old, old + 1);
    if (seen == old) break;
    old = seen;
  }
  atomicExch(&c->exch, g);
  atomicInc(&c->inc, 99u);
}

void case_atomics() {
  Counters c{};
  c.imax = -1;
  c.imin = 1;
  c.fmax = -1.0f;
  c.fmin = 1.0f;
  c.llmax = -1;
  c.dmin = 1e9;
  const int blocks = 16, threads = 128, total = blocks * threads;
  run(atomics_kernel, dim3(blocks), dim3(threads), &c);
  EXPECT(c.i == total && c.u == 2u * total && c.ull == 3ull * total && c.ll == -total, "integer adds %d %u %llu %lld",
         c.i, c.u, c.ull, c.ll);
  EXPECT(c.f == 0.5f * total && c.d == 0.25 * total, "float adds %g %g", c.f, c.d);
  EXPECT(c.imax == total - 1 && c.imin == -(total - 1), "int max/min %d %d", c.imax, c.imin);
  EXPECT(c.fmax == 0.5f * (total - 1) && c.fmin == -(total - 1.0f), "float max/min %g %g", c.fmax, c.fmin);
  EXPECT(c.llmax == (static_cast<long long>(total - 1) << 33), "int64 max %lld", c.llmax);
  EXPECT(c.dmin == -10.0, "double min %g", c.dmin);
  EXPECT(c.cas_counter == total, "CAS counter %d", c.cas_counter);
  EXPECT(c.exch >= 0 && c.exch < total, "exch %d", c.exch);
  EXPECT(c.inc == static_cast<unsigned>(total % 100), "atomicInc wrapped to %u, want %d", c.inc, total % 100);
}

// Kernel parameters are per-thread copies: modifying one does not leak into other threads.
__global__ void param_copy_kernel(int* out, int base) {
  base += static_cast<int>(threadIdx.x);
  out += threadIdx.x;
  *out = base;
}

void case_params_are_copies() {
  std::vector<int> out(64, -1);
  run(param_copy_kernel, dim3(1), dim3(64), out.data(), 1000);
  for (int t = 0; t < 64; ++t) EXPECT(out[t] == 1000 + t, "thread %d wrote %d", t, out[t]);
}

// ----------------------------------------------------------------------------------------------
// Misuse the emulator must report (and then keep working).
__global__ void noop_kernel(int*) {}

__global__ void exited_lane_kernel(int* out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (lane >= 16) return;
  out[lane] = __shfl_down_sync(0xffffffffu, lane, 16, 32);  // lanes 16..31 have returned
}

__global__ void missing_lane_kernel(int* out) {
  // 48 threads: warp 1 has lanes 0..15 only; xor 16 reads lanes that do not exist.
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 16);
}

__global__ void deadlock_kernel(int* out) {
  if (threadIdx.x == 0) {
    __syncwarp();  // waits for lanes 1..31, which wait at __syncthreads for thread 0
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 64) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void bad_mask_kernel(int* out) {
  out[threadIdx.x] = __shfl_sync(0x1u, 5, 0);  // lanes 1..31 pass a mask without themselves
}

__global__ void trap_kernel(int* out) {
  if (threadIdx.x == 3) __trap();
  out[threadIdx.x] = 1;
}

__global__ void bad_width_kernel(int* out) { out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1, 12); }

void case_errors_reported() {
  std::vector<int> buf(2048, 0);
  run_expecting_error("invalid configuration", noop_kernel, dim3(1), dim3(1025), buf.data());
  run_expecting_error("invalid configuration", noop_kernel, dim3(1), dim3(32, 32, 2), buf.data());
  run_expecting_error("invalid configuration", noop_kernel, dim3(1, 65536), dim3(32), buf.data());
  run_expecting_error("invalid configuration", noop_kernel, dim3(0), dim3(32), buf.data());
  run_expecting_error("has already returned", exited_lane_kernel, dim3(1), dim3(32), buf.data());
  run_expecting_error("does not exist", missing_lane_kernel, dim3(1), dim3(48), buf.data());
  run_expecting_error("deadlock", deadlock_kernel, dim3(2), dim3(64), buf.data());
  run_expecting_error("divergent barrier", divergent_barrier_kernel, dim3(1), dim3(128), buf.data());
  run_expecting_error("does not name the calling lane", bad_mask_kernel, dim3(1), dim3(32), buf.data());
  run_expecting_error("__trap", trap_kernel, dim3(1), dim3(32), buf.data());
  run_expecting_error("not a power of two", bad_width_kernel, dim3(1), dim3(32), buf.data());
  // The emulator recovers: the pool and the error state are clean for the next launch.
  std::vector<int> out(300, -1);
  run(iota_kernel, dim3(2), dim3(150), out.data(), 300);
  for (int i = 0; i < 300; ++i) EXPECT(out[i] == i, "after errors: out[%d] = %d", i, out[i]);
}

// Grid-sized smoke test of a barrier-heavy kernel (timing only printed).
__global__ void barrier_loop_kernel(int* out, int rounds) {
  __shared__ int tile[256];
  int acc = 0;
  for (int r = 0; r < rounds; ++r) {
    tile[threadIdx.x] = static_cast<int>(threadIdx.x) + r;
    __syncthreads();
    acc += tile[(threadIdx.x + 1) % blockDim.x];
    __syncthreads();
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

void case_barrier_throughput() {
  const int blocks = 8, rounds = 20;
  std::vector<int> out(blocks * 256, -1);
  const auto t0 = std::chrono::steady_clock::now();
  run(barrier_loop_kernel, dim3(blocks), dim3(256), out.data(), rounds);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("    %d blocks x 256 threads x %d barriers: %.1f ms (%.1f us per barrier)\n", blocks, 2 * rounds,
              s * 1e3, s * 1e6 / (blocks * 2 * rounds));
  for (int b = 0; b < blocks; ++b) {
    for (int t = 0; t < 256; ++t) {
      const int want = rounds * ((t + 1) % 256) + rounds * (rounds - 1) / 2;
      EXPECT(out[b * 256 + t] == want, "block %d thread %d: %d, want %d", b, t, out[b * 256 + t], want);
    }
  }
}

const std::map<std::string, std::function<void()>>& cases() {
  static const std::map<std::string, std::function<void()>> all = {
      {"launch_speed", case_launch_speed},
      {"indices", case_indices},
      {"syncthreads_early_return", case_syncthreads_early_return},
      {"syncthreads_count_and_or", case_syncthreads_count_and_or},
      {"shuffles", case_shuffles},
      {"warp_reductions", case_warp_reductions},
      {"split_warp", case_split_warp},
      {"votes", case_votes},
      {"atomics", case_atomics},
      {"params_are_copies", case_params_are_copies},
      {"errors_reported", case_errors_reported},
      {"barrier_throughput", case_barrier_throughput},
  };
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) names.emplace_back(argv[i]);
  if (names.size() == 1 && names[0] == "--list") {
    for (const auto& [name, fn] : cases()) std::printf("%s\n", name.c_str());
    return 0;
  }
  if (names.empty() || (names.size() == 1 && names[0] == "all")) {
    names.clear();
    for (const auto& [name, fn] : cases()) names.push_back(name);
  }
  int failed = 0;
  for (const auto& name : names) {
    auto it = cases().find(name);
    if (it == cases().end()) {
      std::printf("FAIL %s: no such case (see --list)\n", name.c_str());
      ++failed;
      continue;
    }
    const int before = g_failures;
    std::printf("RUN  %s (%s)\n", name.c_str(), bdb_emu::detail::use_fibers() ? "fibers" : "threads");
    std::fflush(stdout);
    it->second();
    const bool ok = g_failures == before;
    failed += !ok;
    std::printf("%s %s\n", ok ? "PASS" : "FAIL", name.c_str());
    std::fflush(stdout);
  }
  bdb_emu::shutdown_thread_pool();
  return failed == 0 ? 0 : 1;
}
