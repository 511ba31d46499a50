// Drives the project's device code (csrc/cuda/*.cuh, unmodified) on the CPU emulator and checks it
// against a plain C++ reference, with no Python and no libtorch in the process, so that it can run
// under ThreadSanitizer and AddressSanitizer + UBSan (scripts/sanitize_emulated.sh). Buffers are
// allocated at their exact size, so one element past the end is a heap-buffer-overflow under ASan.
//
// Covers every drop kernel and vector width, both layouts, partial blocks, partial lane groups,
// early-returning threads, misaligned (scalar) pointers, ties, all-negative maps, empty and full
// rectangles, and device-resident rectangles that need clamping. The mining kernels
// (pairwise distance, batch-hard select + finalize, backward gather) are in
// sanitizer_mining_cases.cpp, linked into the same program.
//
// Exit status: 0 if every check passed, 1 otherwise (a sanitizer report exits non-zero itself).
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "../../csrc/cuda/drop_kernels.cuh"
#include "sanitizer_common.h"

namespace {

using sanitizer::as_double;
using sanitizer::type_name;

int g_checks = 0;
int g_failures = 0;

void fail(const std::string& what) {
  if (++g_failures <= 20) std::printf("FAIL %s\n", what.c_str());
}

std::string emulator_error() { return bdb_emu::get_last_error(); }

// An exact-size heap buffer, optionally starting one element into a larger allocation (a pointer
// aligned only to sizeof(T)).
template <class T>
struct Buffer {
  std::unique_ptr<T[]> storage;
  T* data = nullptr;
  int64_t size = 0;
  Buffer(int64_t n, bool misaligned) : storage(new T[n + (misaligned ? 1 : 0)]), size(n) {
    data = storage.get() + (misaligned ? 1 : 0);
  }
};

struct Case {
  int64_t N, C, H, W;
  bool channels_last;
  int64_t rect[4];
  bool rect_on_device;  // pass a pointer (read in the kernel, clamped) instead of host values
  const char* values;   // "ties", "negative", "random"
};

std::string describe(const Case& c, const char* type, int vec, const char* kernel) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%s<%s, VEC=%d> N=%lld C=%lld H=%lld W=%lld %s rect=[%lld,%lld,%lld,%lld]%s %s", kernel,
                type, vec, (long long)c.N, (long long)c.C, (long long)c.H, (long long)c.W,
                c.channels_last ? "channels_last" : "NCHW", (long long)c.rect[0], (long long)c.rect[1],
                (long long)c.rect[2], (long long)c.rect[3], c.rect_on_device ? " (device rect)" : "", c.values);
  return buf;
}

// Flat offset of (n, c, h, w) in the case's memory layout.
int64_t offset_of(const Case& c, int64_t n, int64_t ch, int64_t h, int64_t w) {
  return c.channels_last ? ((n * c.H + h) * c.W + w) * c.C + ch : ((n * c.C + ch) * c.H + h) * c.W + w;
}

bdb::DropRect clamped_rect(const Case& c) {
  bdb::RectArg arg{};
  for (int i = 0; i < 4; ++i) arg.host_values[i] = c.rect[i];
  return bdb::load_rect(arg, c.H, c.W);
}

template <class T>
std::vector<T> make_input(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> q(-8, 8);
  std::vector<T> v(c.N * c.C * c.H * c.W);
  for (auto& x : v) {
    const int k = q(rng);
    if (std::string(c.values) == "negative") {
      x = static_cast<T>(-0.25f * static_cast<float>(std::abs(k) + 1));
    } else if (std::string(c.values) == "ties") {
      x = static_cast<T>(0.5f * static_cast<float>(k % 3));  // many equal maxima
    } else {
      x = static_cast<T>(0.25f * static_cast<float>(k));  // exactly representable in every dtype
    }
  }
  return v;
}

template <class T>
double tol() {
  if constexpr (std::is_same_v<T, double>) return 1e-12;
  if constexpr (std::is_same_v<T, float>) return 1e-6;
  return 1e-2;
}

bool close(double got, double want, double rel) { return std::fabs(got - want) <= rel * (1.0 + std::fabs(want)); }

template <class T, int VEC>
bdb::RectArg rect_arg(const Case& c, const int64_t* device_rect) {
  bdb::RectArg arg{};
  if (c.rect_on_device) {
    arg.device_values = device_rect;
  } else {
    for (int i = 0; i < 4; ++i) arg.host_values[i] = c.rect[i];
  }
  return arg;
}

// The case's rectangle in a heap allocation of its own, as a kernel reads a device-resident one
// (rect_arg passes it when c.rect_on_device).
std::unique_ptr<int64_t[]> device_rect_of(const Case& c) {
  auto rect = std::make_unique<int64_t[]>(4);
  std::copy(c.rect, c.rect + 4, rect.get());
  return rect;
}

// An exact-size buffer holding `host`.
template <class T>
Buffer<T> upload(const std::vector<T>& host, bool misaligned) {
  Buffer<T> b(static_cast<int64_t>(host.size()), misaligned);
  std::copy(host.begin(), host.end(), b.data);
  return b;
}

// An elementwise kernel over n elements, VEC at a time, in the launch shape the host code uses.
template <int VEC, class Kernel, class... Args>
void launch_elementwise(Kernel kernel, int64_t n, Args... args) {
  const bdb::LaunchShape shape = bdb::elementwise_launch(n, VEC);
  BDB_LAUNCH_KERNEL(kernel, dim3(static_cast<unsigned>(shape.blocks)), dim3(shape.threads), bdb_emu::Stream{},
                    args...);
}

// Counts the launch just made; false (reported as a failure of `what`) when the emulator refused it.
bool launched(const std::string& what) {
  ++g_checks;
  if (const std::string e = emulator_error(); !e.empty()) {
    fail(what + ": " + e);
    return false;
  }
  return true;
}

// An element of a case's map, for failure messages.
struct Position {
  int64_t n, c, h, w;
  std::string text() const {
    return "(" + std::to_string(n) + "," + std::to_string(c) + "," + std::to_string(h) + "," + std::to_string(w) + ")";
  }
};
// The first (n, c, h, w) of the case's map, in NCHW order, where right(n, c, h, w) is false.
template <class Right>
std::optional<Position> first_wrong(const Case& c, Right right) {
  for (int64_t nn = 0; nn < c.N; ++nn)
    for (int64_t ch = 0; ch < c.C; ++ch)
      for (int64_t h = 0; h < c.H; ++h)
        for (int64_t w = 0; w < c.W; ++w) {
          if (!right(nn, ch, h, w)) return Position{nn, ch, h, w};
        }
  return std::nullopt;
}

template <class T, int VEC>
void check_drop_block(const Case& c, bool misaligned) {
  const std::string what = describe(c, type_name<T>(), VEC, misaligned ? "drop_block_kernel(misaligned)" : "drop_block_kernel");
  const std::vector<T> host = make_input<T>(c, 1);
  const int64_t n = static_cast<int64_t>(host.size());
  const Buffer<T> x = upload(host, misaligned);
  Buffer<T> y(n, misaligned);
  const auto device_rect = device_rect_of(c);
  const bdb::MapLayout map{c.N, c.C, c.H, c.W, c.channels_last};
  launch_elementwise<VEC>(bdb::drop_block_kernel<T, VEC>, n, x.data, y.data, map,
                          rect_arg<T, VEC>(c, device_rect.get()));
  if (!launched(what)) return;
  const bdb::DropRect r = clamped_rect(c);
  const auto wrong = first_wrong(c, [&](int64_t nn, int64_t ch, int64_t h, int64_t w) {
    const int64_t o = offset_of(c, nn, ch, h, w);
    return as_double(y.data[o]) == (r.dropped(h, w) ? 0.0 : as_double(host[o]));
  });
  if (wrong) fail(what + ": wrong value at " + wrong->text());
}

// drop_block_strided_kernel: the case's tensor read through its strides (channels_last storage when
// c.channels_last, i.e. a permuted view), y written NCHW-contiguous.
template <class T, int VEC>
void check_drop_block_strided(const Case& c) {
  if (c.W % VEC != 0) return;
  const std::string what = describe(c, type_name<T>(), VEC, "drop_block_strided_kernel");
  const std::vector<T> host = make_input<T>(c, 4);
  const int64_t n = static_cast<int64_t>(host.size());
  const Buffer<T> x = upload(host, false);
  Buffer<T> y(n, false);
  const auto device_rect = device_rect_of(c);
  const bdb::MapStrides xs = c.channels_last ? bdb::MapStrides{c.H * c.W * c.C, 1, c.W * c.C, c.C}
                                             : bdb::MapStrides{c.C * c.H * c.W, c.H * c.W, c.W, 1};
  const bdb::MapLayout map{c.N, c.C, c.H, c.W, false};
  launch_elementwise<VEC>(bdb::drop_block_strided_kernel<T, VEC>, n, x.data, xs, y.data, map,
                          rect_arg<T, VEC>(c, device_rect.get()));
  if (!launched(what)) return;
  const bdb::DropRect r = clamped_rect(c);
  const auto wrong = first_wrong(c, [&](int64_t nn, int64_t ch, int64_t h, int64_t w) {
    const double want = r.dropped(h, w) ? 0.0 : as_double(host[offset_of(c, nn, ch, h, w)]);
    return as_double(y.data[((nn * c.C + ch) * c.H + h) * c.W + w]) == want;  // y is NCHW
  });
  if (wrong) fail(what + ": wrong value at " + wrong->text());
}

// Reference drop_pool: value and argmax per (n, c), docs/kernels.md semantics.
struct Pooled {
  std::vector<double> value;
  std::vector<int64_t> argmax;
};

template <class T>
Pooled reference_pool(const Case& c, const std::vector<T>& x, bool is_max) {
  const bdb::DropRect r = clamped_rect(c);
  Pooled p{std::vector<double>(c.N * c.C), std::vector<int64_t>(c.N * c.C, -1)};
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t ch = 0; ch < c.C; ++ch) {
      double best = 0.0, sum = 0.0;
      int64_t best_i = -1;
      for (int64_t h = 0; h < c.H; ++h)
        for (int64_t w = 0; w < c.W; ++w) {
          if (r.dropped(h, w)) continue;
          const double v = as_double(x[offset_of(c, n, ch, h, w)]);
          sum += v;
          if (best_i < 0 || v > best) {
            best = v;
            best_i = h * c.W + w;
          }
        }
      if (is_max) {
        if (!r.empty() && (best_i < 0 || best < 0.0)) {
          best = 0.0;
          best_i = -1;
        }
        p.value[n * c.C + ch] = best;
        p.argmax[n * c.C + ch] = best_i;
      } else {
        p.value[n * c.C + ch] = sum / static_cast<double>(c.H * c.W);
      }
    }
  return p;
}

template <class T, int VEC, bool IS_MAX>
void check_pool(const Case& c) {
  const char* kname = c.channels_last ? "drop_pool_channels_kernel" : "drop_pool_planes_kernel";
  const std::string what = describe(c, type_name<T>(), VEC, kname) + (IS_MAX ? " max" : " avg");
  const std::vector<T> host = make_input<T>(c, 2);
  const Buffer<T> x = upload(host, false);
  Buffer<T> out(c.N * c.C, false);
  Buffer<int64_t> argmax(c.N * c.C, false);
  const auto device_rect = device_rect_of(c);
  const bdb::RectArg rect = rect_arg<T, VEC>(c, device_rect.get());
  int64_t* ap = IS_MAX ? argmax.data : nullptr;
  if (c.channels_last) {
    const bdb::ChannelPoolShape shape = bdb::channel_pool_launch(c.C / VEC, c.N, c.H * c.W);
    auto kernel = bdb::drop_pool_channels_kernel<T, VEC, IS_MAX>;
    BDB_LAUNCH_KERNEL(kernel, dim3(static_cast<unsigned>(shape.blocks_x), static_cast<unsigned>(shape.blocks_y)),
                      dim3(shape.threads_x, shape.threads_y), bdb_emu::Stream{}, x.data, out.data, ap, c.N, c.C, c.H,
                      c.W, rect);
  } else {
    const bdb::PlanePoolShape shape = bdb::plane_pool_launch(c.N * c.C, c.H * c.W / VEC);
    auto kernel = bdb::drop_pool_planes_kernel<T, VEC, IS_MAX>;
    BDB_LAUNCH_KERNEL(kernel, dim3(static_cast<unsigned>(shape.blocks)), dim3(shape.threads), bdb_emu::Stream{},
                      x.data, out.data, ap, c.N * c.C, c.H, c.W, shape.group, rect);
  }
  if (!launched(what)) return;
  const Pooled want = reference_pool(c, host, IS_MAX);
  for (int64_t i = 0; i < c.N * c.C; ++i) {
    const double got = as_double(out.data[i]);
    if (!close(got, want.value[i], tol<T>())) {
      return fail(what + ": plane " + std::to_string(i) + " value " + std::to_string(got) + ", want " +
                  std::to_string(want.value[i]));
    }
    if (IS_MAX && argmax.data[i] != want.argmax[i]) {
      return fail(what + ": plane " + std::to_string(i) + " argmax " + std::to_string(argmax.data[i]) + ", want " +
                  std::to_string(want.argmax[i]));
    }
  }
}

template <class T, int VEC, bool IS_MAX>
void check_pool_backward(const Case& c) {
  const std::string what = describe(c, type_name<T>(), VEC, "drop_pool_backward_kernel") + (IS_MAX ? " max" : " avg");
  const std::vector<T> host = make_input<T>(c, 3);
  const Pooled fwd = reference_pool(c, host, true);
  const int64_t planes = c.N * c.C, n = static_cast<int64_t>(host.size());
  Buffer<T> grad_out(planes, false);
  Buffer<int64_t> argmax(planes, false);
  for (int64_t i = 0; i < planes; ++i) {
    grad_out.data[i] = static_cast<T>(0.5f + static_cast<float>(i % 5));
    argmax.data[i] = fwd.argmax[i];
  }
  Buffer<T> dx(n, false);
  const auto device_rect = device_rect_of(c);
  const bdb::MapLayout map{c.N, c.C, c.H, c.W, c.channels_last};
  launch_elementwise<VEC>(bdb::drop_pool_backward_kernel<T, VEC, IS_MAX>, n, grad_out.data, c.C, int64_t{1},
                          IS_MAX ? argmax.data : nullptr, dx.data, map, rect_arg<T, VEC>(c, device_rect.get()));
  if (!launched(what)) return;
  const bdb::DropRect r = clamped_rect(c);
  const auto wrong = first_wrong(c, [&](int64_t nn, int64_t ch, int64_t h, int64_t w) {
    const int64_t plane = nn * c.C + ch;
    const double g = as_double(grad_out.data[plane]);
    double want = 0.0;
    if (IS_MAX) {
      want = argmax.data[plane] == h * c.W + w ? g : 0.0;
    } else {
      want = r.dropped(h, w) ? 0.0 : g / static_cast<double>(c.H * c.W);
    }
    return close(as_double(dx.data[offset_of(c, nn, ch, h, w)]), want, tol<T>());
  });
  if (wrong) fail(what + ": dx wrong at " + wrong->text());
}

template <class T, int VEC>
void check_all_kernels(const Case& c) {
  const int64_t inner = c.channels_last ? c.C : c.W;
  if (inner % VEC != 0) return;
  check_drop_block<T, VEC>(c, false);
  check_drop_block_strided<T, VEC>(c);
  check_pool<T, VEC, true>(c);
  check_pool<T, VEC, false>(c);
  check_pool_backward<T, VEC, true>(c);
  check_pool_backward<T, VEC, false>(c);
}

template <class T>
void check_type(const Case& c) {
  constexpr int kMax = 16 / sizeof(T);
  check_all_kernels<T, 1>(c);
  check_drop_block<T, 1>(c, /*misaligned=*/true);
  check_all_kernels<T, 2>(c);
  if constexpr (kMax >= 4) check_all_kernels<T, 4>(c);
  if constexpr (kMax >= 8) check_all_kernels<T, 8>(c);
}

}  // namespace

// sanitizer_mining_cases.cpp
void run_mining_cases(bool quick, int& checks, int& failures);

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  std::vector<Case> cases = {
      // Odd sizes: scalar path, one partial block, lane groups of 32 with idle lanes.
      {2, 3, 5, 7, false, {1, 2, 3, 4}, false, "random"},
      {2, 3, 5, 7, true, {1, 2, 3, 4}, true, "random"},
      // W and C multiples of 8: every vector width; more than one block of vectors.
      {2, 24, 6, 8, false, {2, 0, 2, 8}, false, "ties"},
      {2, 24, 6, 8, true, {0, 3, 6, 2}, true, "ties"},
      // Small planes: lane groups of 1..4, planes not a multiple of planes per block.
      {3, 37, 1, 2, false, {0, 1, 1, 1}, false, "random"},
      {1, 130, 2, 2, false, {0, 0, 1, 1}, true, "negative"},
      // channels_last with few channel vectors: threads past C return early.
      {2, 8, 3, 4, true, {1, 1, 1, 2}, false, "negative"},
      // Empty and full rectangles; a device rect past the map is clamped to it.
      {2, 4, 4, 8, false, {1, 1, 0, 3}, false, "random"},
      {2, 4, 4, 8, true, {0, 0, 4, 8}, false, "random"},
      {2, 4, 4, 8, false, {2, 5, 9, 9}, true, "random"},
      {1, 16, 3, 16, true, {-3, 14, 5, 7}, true, "ties"},
  };
  if (quick) cases.resize(4);
  for (const Case& c : cases) {
    check_type<float>(c);
    check_type<double>(c);
    check_type<c10::Half>(c);
    check_type<c10::BFloat16>(c);
  }
  run_mining_cases(quick, g_checks, g_failures);
  bdb_emu::shutdown_thread_pool();
  std::printf("%d kernel launches checked, %d failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
