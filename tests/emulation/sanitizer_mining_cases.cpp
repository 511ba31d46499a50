// The mining half of the sanitizer driver (sanitizer_driver.cpp calls run_mining_cases): drives
// pairwise_distance_kernel, mining_select_kernel + mining_finalize_kernel and mining_backward_kernel
// (csrc/cuda/mining_kernels.cuh, unmodified) exactly as csrc/cuda/mining_cuda.cu launches them (the
// same launch-shape functions, BDB_LAUNCH_KERNEL, the same buffers at their exact sizes; the
// backward's CSR built in plain C++ the way chosen_pairs_by_row builds it with ATen) and compares
// with a plain C++ reference in double (direct-form distances, docs/kernels.md semantics).
//
// Cases: ragged identity counts, one identity (no negatives), all labels distinct (no positives),
// repeated embeddings (zero distances, ties), N not a multiple of the 32-row tile (several tiles and
// several candidate splits), N = 1, D not a multiple of the 16-element chunk.
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../../csrc/cuda/mining_kernels.cuh"
#include "sanitizer_common.h"

namespace {

using sanitizer::as_double;
using sanitizer::type_name;

int* g_checks_ptr = nullptr;
int* g_failures_ptr = nullptr;

void fail(const std::string& what) {
  if (++*g_failures_ptr <= 20) std::printf("FAIL %s\n", what.c_str());
}

// Relative tolerance of one rounded output (docs/kernels.md: fp32 within 1e-5 relative, 1e-6 absolute).
template <class T>
double rel_tol() {
  if constexpr (std::is_same_v<T, double>) return 1e-12;
  if constexpr (std::is_same_v<T, float>) return 1e-5;
  return 2e-3;
}

bool close(double got, double want, double rel, double scale) {
  return std::fabs(got - want) <= rel * (scale + std::fabs(want)) + rel * 0.1;
}

// An exact-size heap buffer: one element past the end is a heap-buffer-overflow under ASan.
template <class T>
struct Buf {
  std::unique_ptr<T[]> storage;
  int64_t size;
  explicit Buf(int64_t n, T fill) : storage(new T[n > 0 ? n : 0]), size(n) {
    for (int64_t i = 0; i < n; ++i) storage[i] = fill;
  }
  T* data() { return storage.get(); }
  T& operator[](int64_t i) { return storage[i]; }
};

struct MiningCase {
  const char* name;
  int64_t N, D;
  std::vector<int64_t> labels;
  int distinct_rows;  // > 0: rows repeat among this many distinct embeddings
};

std::string describe(const MiningCase& c, const char* type, const char* kernel) {
  return std::string(kernel) + "<" + type + "> " + c.name + " N=" + std::to_string(c.N) + " D=" + std::to_string(c.D);
}

// Multiples of 0.25 in [-2, 2]: exact in every dtype, and every squared distance (D <= 64) is exact in
// float, so ties are ties in the kernel too and the chosen indices must match the reference exactly.
std::vector<double> make_x(const MiningCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> q(-8, 8);
  const int64_t rows = c.distinct_rows > 0 ? c.distinct_rows : c.N;
  std::vector<double> base(rows * c.D);
  for (auto& v : base) v = 0.25 * q(rng);
  std::vector<double> x(c.N * c.D);
  for (int64_t i = 0; i < c.N; ++i)
    for (int64_t d = 0; d < c.D; ++d) x[i * c.D + d] = base[(i % rows) * c.D + d];
  return x;
}

template <class T>
Buf<T> to_buffer(const std::vector<double>& v) {
  Buf<T> b(static_cast<int64_t>(v.size()), T(0));
  for (size_t i = 0; i < v.size(); ++i) b[i] = static_cast<T>(v[i]);
  return b;
}

double squared_distance(const std::vector<double>& a, int64_t i, const std::vector<double>& b, int64_t j, int64_t D) {
  double s = 0.0;
  for (int64_t d = 0; d < D; ++d) {
    const double diff = a[i * D + d] - b[j * D + d];
    s += diff * diff;
  }
  return s;
}

struct Mined {
  std::vector<double> d_ap, d_an;
  std::vector<int64_t> idx_p, idx_n;
};

Mined reference_mine(const MiningCase& c, const std::vector<double>& x) {
  const int64_t N = c.N;
  Mined m{std::vector<double>(N), std::vector<double>(N), std::vector<int64_t>(N), std::vector<int64_t>(N)};
  for (int64_t i = 0; i < N; ++i) {
    double bp = 0.0, bn = 0.0;
    int64_t ip = -1, in = -1;
    for (int64_t j = 0; j < N; ++j) {
      const double s = squared_distance(x, i, x, j, c.D);
      if (c.labels[j] == c.labels[i]) {
        if (j != i && (ip < 0 || s > bp)) bp = s, ip = j;  // j ascending: ties keep the smallest index
      } else if (in < 0 || s < bn) {
        bn = s, in = j;
      }
    }
    m.d_ap[i] = ip >= 0 ? std::sqrt(bp) : 0.0;
    m.idx_p[i] = ip >= 0 ? ip : i;
    m.d_an[i] = in >= 0 ? std::sqrt(bn) : std::numeric_limits<double>::infinity();
    m.idx_n[i] = in;
  }
  return m;
}

template <class T>
void check_pairwise(const MiningCase& c, int64_t M, bool squared) {
  const std::string what = describe(c, type_name<T>(), "pairwise_distance_kernel") + " M=" + std::to_string(M) +
                           (squared ? " squared" : "");
  const std::vector<double> xh = make_x(c, 11);
  MiningCase cy = c;
  cy.N = M;
  cy.distinct_rows = 0;
  const std::vector<double> yh = make_x(cy, 12);
  Buf<T> x = to_buffer<T>(xh), y = to_buffer<T>(yh);
  Buf<T> out(c.N * M, static_cast<T>(std::numeric_limits<float>::quiet_NaN()));
  const bdb::PairwiseShape shape = bdb::pairwise_launch(c.N, M);
  auto kernel = bdb::pairwise_distance_kernel<T>;
  const dim3 grid(static_cast<unsigned>(shape.blocks_x), static_cast<unsigned>(shape.blocks_y));
  BDB_LAUNCH_KERNEL(kernel, grid, dim3(shape.threads), bdb_emu::Stream{}, x.data(), y.data(), out.data(), c.N, M, c.D,
                    squared);
  ++*g_checks_ptr;
  if (const std::string e = bdb_emu::get_last_error(); !e.empty()) return fail(what + ": " + e);
  for (int64_t i = 0; i < c.N; ++i)
    for (int64_t j = 0; j < M; ++j) {
      const double s = squared_distance(xh, i, yh, j, c.D);
      const double want = squared ? s : std::sqrt(s);
      const double got = as_double(out[i * M + j]);
      if (!close(got, want, rel_tol<T>(), 0.0)) {
        return fail(what + ": out[" + std::to_string(i) + "," + std::to_string(j) + "] = " + std::to_string(got) +
                    ", want " + std::to_string(want));
      }
    }
}

template <class T>
void check_mine(const MiningCase& c) {
  using acc_t = at::opmath_type<T>;
  const std::string what = describe(c, type_name<T>(), "mining_select_kernel + mining_finalize_kernel");
  const std::vector<double> xh = make_x(c, 21);
  const int64_t N = c.N, D = c.D;
  Buf<T> x = to_buffer<T>(xh);
  Buf<int64_t> labels(N, 0);
  for (int64_t i = 0; i < N; ++i) labels[i] = c.labels[i];
  const T nan = static_cast<T>(std::numeric_limits<float>::quiet_NaN());
  Buf<T> d_ap(N, nan), d_an(N, nan);
  Buf<int64_t> idx_p(N, -7), idx_n(N, -7);
  const bdb::MiningSelectShape select = bdb::mining_select_launch(N);
  Buf<acc_t> ppv(select.splits * N, acc_t(0)), pnv(select.splits * N, acc_t(0));
  Buf<int64_t> ppi(select.splits * N, -7), pni(select.splits * N, -7);
  auto select_kernel = bdb::mining_select_kernel<T>;
  const dim3 select_grid(static_cast<unsigned>(select.anchor_blocks), static_cast<unsigned>(select.splits));
  BDB_LAUNCH_KERNEL(select_kernel, select_grid, dim3(select.threads), bdb_emu::Stream{}, x.data(), labels.data(), N, D,
                    select.splits, select.tiles_per_split, ppv.data(), ppi.data(), pnv.data(), pni.data());
  ++*g_checks_ptr;
  if (const std::string e = bdb_emu::get_last_error(); !e.empty()) return fail(what + " (select): " + e);
  const bdb::LaunchShape fin = bdb::mining_finalize_launch(N);
  auto finalize_kernel = bdb::mining_finalize_kernel<T>;
  BDB_LAUNCH_KERNEL(finalize_kernel, dim3(static_cast<unsigned>(fin.blocks)), dim3(fin.threads), bdb_emu::Stream{},
                    x.data(), N, D, select.splits, ppv.data(), ppi.data(), pnv.data(), pni.data(), d_ap.data(),
                    d_an.data(), idx_p.data(), idx_n.data());
  ++*g_checks_ptr;
  if (const std::string e = bdb_emu::get_last_error(); !e.empty()) return fail(what + " (finalize): " + e);
  const Mined want = reference_mine(c, xh);
  const std::string splits = " (splits=" + std::to_string(select.splits) + ")";
  for (int64_t i = 0; i < N; ++i) {
    const std::string at = what + splits + ": anchor " + std::to_string(i);
    if (idx_p[i] != want.idx_p[i]) {
      return fail(at + " idx_p " + std::to_string(idx_p[i]) + ", want " + std::to_string(want.idx_p[i]));
    }
    if (idx_n[i] != want.idx_n[i]) {
      return fail(at + " idx_n " + std::to_string(idx_n[i]) + ", want " + std::to_string(want.idx_n[i]));
    }
    if (!close(as_double(d_ap[i]), want.d_ap[i], rel_tol<T>(), 0.0)) {
      return fail(at + " d_ap " + std::to_string(as_double(d_ap[i])) + ", want " + std::to_string(want.d_ap[i]));
    }
    const double got_an = as_double(d_an[i]);
    const bool ok_an = std::isinf(want.d_an[i]) ? (std::isinf(got_an) && got_an > 0)
                                                : close(got_an, want.d_an[i], rel_tol<T>(), 0.0);
    if (!ok_an) return fail(at + " d_an " + std::to_string(got_an) + ", want " + std::to_string(want.d_an[i]));
  }
}

// chosen_pairs_by_row (mining_cuda.cu) in plain C++: pair s < N is anchor s's positive (row idx_p[s],
// or the sentinel row N when it has none), pair s >= N anchor s - N's negative (row idx_n, or N);
// a stable sort by row, offsets[j] = the first sorted position whose row is >= j, for j = 0..N.
void build_csr(const std::vector<int64_t>& idx_p, const std::vector<int64_t>& idx_n, int64_t N,
               std::vector<int64_t>& order, std::vector<int64_t>& offsets) {
  std::vector<int64_t> keys(2 * N);
  for (int64_t s = 0; s < N; ++s) {
    keys[s] = (idx_p[s] == s || idx_p[s] < 0) ? N : idx_p[s];
    keys[N + s] = idx_n[s] < 0 ? N : idx_n[s];
  }
  order.resize(2 * N);
  for (int64_t s = 0; s < 2 * N; ++s) order[s] = s;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
  offsets.assign(N + 1, 0);
  for (int64_t j = 0; j <= N; ++j) {
    offsets[j] = std::lower_bound(order.begin(), order.end(), j,
                                  [&](int64_t s, int64_t row) { return keys[s] < row; }) -
                 order.begin();
  }
}

template <class T>
void check_mine_backward(const MiningCase& c) {
  const std::string what = describe(c, type_name<T>(), "mining_backward_kernel");
  const std::vector<double> xh = make_x(c, 31);
  const int64_t N = c.N, D = c.D;
  const Mined fwd = reference_mine(c, xh);
  // The forward outputs in T (d_ap/d_an rounded as the forward would give them), gradients with zeros.
  std::vector<double> gap(N), gan(N), dap(N), dan(N);
  for (int64_t i = 0; i < N; ++i) {
    gap[i] = (i % 4 == 3) ? 0.0 : 0.5 + 0.25 * static_cast<double>(i % 5);
    gan[i] = (i % 5 == 2) ? 0.0 : -0.75 + 0.25 * static_cast<double>(i % 3);
    dap[i] = as_double(static_cast<T>(fwd.d_ap[i]));
    dan[i] = as_double(static_cast<T>(fwd.d_an[i]));
  }
  Buf<T> x = to_buffer<T>(xh), grad_ap = to_buffer<T>(gap), grad_an = to_buffer<T>(gan);
  Buf<T> d_ap = to_buffer<T>(dap), d_an = to_buffer<T>(dan);
  Buf<int64_t> idx_p(N, 0), idx_n(N, 0);
  for (int64_t i = 0; i < N; ++i) idx_p[i] = fwd.idx_p[i], idx_n[i] = fwd.idx_n[i];
  std::vector<int64_t> order_h, offsets_h;
  build_csr(fwd.idx_p, fwd.idx_n, N, order_h, offsets_h);
  Buf<int64_t> order(2 * N, 0), offsets(N + 1, 0);
  std::copy(order_h.begin(), order_h.end(), order.data());
  std::copy(offsets_h.begin(), offsets_h.end(), offsets.data());
  Buf<T> dx(N * D, static_cast<T>(std::numeric_limits<float>::quiet_NaN()));
  const bdb::LaunchShape shape = bdb::mining_backward_launch(N, D);
  auto kernel = bdb::mining_backward_kernel<T>;
  BDB_LAUNCH_KERNEL(kernel, dim3(static_cast<unsigned>(shape.blocks)), dim3(shape.threads), bdb_emu::Stream{},
                    grad_ap.data(), grad_an.data(), x.data(), idx_p.data(), idx_n.data(), d_ap.data(), d_an.data(),
                    order.data(), offsets.data(), dx.data(), N, D);
  ++*g_checks_ptr;
  if (const std::string e = bdb_emu::get_last_error(); !e.empty()) return fail(what + ": " + e);
  // Reference: d|x_a - x_b| / dx_a = (x_a - x_b) / d for each chosen pair, 0 where d = 0 or no pair.
  std::vector<double> want(N * D, 0.0), scale(N * D, 0.0);
  auto add_pair = [&](int64_t a, int64_t b, double g, double d) {
    if (!(d > 0.0) || g == 0.0 || std::isinf(d)) return;
    const double w = g / d;
    for (int64_t k = 0; k < D; ++k) {
      const double diff = xh[a * D + k] - xh[b * D + k];
      want[a * D + k] += w * diff;
      want[b * D + k] -= w * diff;
      scale[a * D + k] += std::fabs(w * diff);
      scale[b * D + k] += std::fabs(w * diff);
    }
  };
  for (int64_t i = 0; i < N; ++i) {
    if (fwd.idx_p[i] != i && fwd.idx_p[i] >= 0) add_pair(i, fwd.idx_p[i], gap[i], dap[i]);
    if (fwd.idx_n[i] >= 0) add_pair(i, fwd.idx_n[i], gan[i], dan[i]);
  }
  for (int64_t e = 0; e < N * D; ++e) {
    const double got = as_double(dx[e]);
    if (!close(got, want[e], rel_tol<T>(), scale[e])) {
      return fail(what + ": dx[" + std::to_string(e / D) + "," + std::to_string(e % D) + "] = " + std::to_string(got) +
                  ", want " + std::to_string(want[e]));
    }
  }
}

template <class T>
void check_case(const MiningCase& c) {
  check_mine<T>(c);
  check_mine_backward<T>(c);
}

std::vector<int64_t> ragged_labels(int64_t N) {
  // Identity sizes 1, 2, 3, ..., interleaved so that positives sit in different tiles.
  std::vector<int64_t> labels;
  for (int64_t id = 0; static_cast<int64_t>(labels.size()) < N; ++id)
    for (int64_t k = 0; k <= id && static_cast<int64_t>(labels.size()) < N; ++k) labels.push_back(id);
  std::mt19937 rng(5);
  std::shuffle(labels.begin(), labels.end(), rng);
  return labels;
}

}  // namespace

// Runs every mining case; adds to the caller's counters. quick: the first few cases only.
void run_mining_cases(bool quick, int& checks, int& failures) {
  g_checks_ptr = &checks;
  g_failures_ptr = &failures;
  std::vector<MiningCase> cases = {
      // Ragged identities over 2 anchor tiles (45 = 32 + 13): 2 candidate splits, D not a multiple of 16.
      {"ragged", 45, 33, ragged_labels(45), 0},
      // One identity: no anchor has a negative (d_an = +inf, idx_n = -1).
      {"single-identity", 9, 5, std::vector<int64_t>(9, 4), 0},
      // All labels distinct: no anchor has a positive (d_ap = 0, idx_p = i); one partial tile.
      {"all-distinct", 17, 16, {}, 0},
      // Repeated embeddings: zero distances, ties everywhere, also across the 2 splits (smallest index
      // wins; zero-weight gradients).
      {"repeated", 40, 7, {}, 3},
      // N = 1: no positive, no negative.
      {"N=1", 1, 3, {0}, 0},
  };
  for (int64_t i = 0; i < 17; ++i) cases[2].labels.push_back(100 - i);
  for (int64_t i = 0; i < 40; ++i) cases[3].labels.push_back(i % 4);
  // Under TSan every 256-thread block of select and finalize costs about 0.1-0.2 s (real threads, one
  // rendezvous per shuffle), so: float everywhere, double on the small cases, half's 16-bit loads and
  // stores through the backward and pairwise_distance only.
  if (quick) cases.resize(2);
  for (const MiningCase& c : cases) check_case<float>(c);
  check_case<double>(cases[1]);
  if (!quick) check_case<double>(cases[4]);
  check_mine_backward<c10::Half>(cases[0]);
  // pairwise_distance: N != M, partial tiles on both sides, 2 x 2 tiles, N = M = 1.
  check_pairwise<float>(cases[0], 37, false);
  check_pairwise<float>(cases[0], 5, true);
  check_pairwise<double>(cases[1], 5, false);
  check_pairwise<c10::Half>(cases[1], 33, true);
  if (!quick) check_pairwise<float>(cases[4], 1, false);
}
