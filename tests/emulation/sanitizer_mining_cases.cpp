// The mining half of the sanitizer driver (sanitizer_driver.cpp calls run_mining_cases): drives the
// kernels of csrc/cuda/mining_kernels.cuh, mining_gemm_kernels.cuh and mining_backward_kernels.cuh
// (unmodified) exactly as csrc/cuda/mining_cuda.cu launches them (the same launch-shape functions,
// vector widths, BDB_LAUNCH_KERNEL, the same buffers at their exact sizes) and compares with a plain
// C++ reference in double (direct-form distances, docs/kernels.md semantics). Every forward path runs
// on every case (the host picks split-K at small N, the GEMM form at N >= 2048; here each is forced):
//   select + finalize, split-K + split-K finalize, norms + GEMM bounds + GEMM finalize.
// The backward's grouping kernel is checked against a plain C++ stable CSR, then the chunk and row
// kernels against the reference gradient.
//
// Cases: ragged identity counts, one identity (no negatives), all labels distinct (no positives),
// repeated embeddings (zero distances, ties), N not a multiple of the tiles (several tiles and
// several candidate splits), N = 1, D not a multiple of the chunks, and a hub (one negative chosen
// by most anchors: the backward's chunked rows).
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "../../csrc/cuda/mining_backward_kernels.cuh"
#include "../../csrc/cuda/mining_gemm_kernels.cuh"
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
  bool hub = false;   // backward: every anchor of another identity than row 0's takes row 0 as its negative
};

// The vector width mining_cuda.cu would pick (new T[] is at least 16-byte aligned), passed to `body`
// as a compile-time constant.
template <class T, class Body>
void with_vector_width(const T* data, int64_t D, Body&& body) {
  const bool aligned = reinterpret_cast<uintptr_t>(data) % 16 == 0;
  constexpr int kWide = 16 / sizeof(T);
  if (bdb::mining_vector_width(D, sizeof(T), aligned) == kWide) {
    body(std::integral_constant<int, kWide>{});
  } else {
    body(std::integral_constant<int, 1>{});
  }
}

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

// pairwise_distance by one of the host's two paths: the tile kernel, or (split_k) split-K + its
// finalize, which the host takes while the tile pairs cannot fill the GPU (then with the host's k-splits).
template <class T>
void check_pairwise(const MiningCase& c, int64_t M, bool squared, bool split_k) {
  using acc_t = at::opmath_type<T>;
  const bdb::MiningSplitKShape splitk = bdb::mining_splitk_launch(c.N, M, c.D);
  if (split_k && splitk.ksplits < 2) return fail(describe(c, type_name<T>(), "pairwise split-K") + ": no k-splits here");
  const std::string what = describe(c, type_name<T>(), split_k ? "pairwise split-K + finalize" : "pairwise_distance_kernel") +
                           " M=" + std::to_string(M) + (squared ? " squared" : "");
  const std::vector<double> xh = make_x(c, 11);
  MiningCase cy = c;
  cy.N = M;
  cy.distinct_rows = 0;
  const std::vector<double> yh = make_x(cy, 12);
  Buf<T> x = to_buffer<T>(xh), y = to_buffer<T>(yh);
  Buf<T> out(c.N * M, static_cast<T>(std::numeric_limits<float>::quiet_NaN()));
  if (split_k) {
    Buf<acc_t> partial(splitk.ksplits * c.N * M, acc_t(-1));
    with_vector_width(x.data(), c.D, [&](auto vec) {
      auto kernel = bdb::mining_splitk_kernel<T, decltype(vec)::value>;
      const dim3 grid(static_cast<unsigned>(splitk.tile_pairs), static_cast<unsigned>(splitk.ksplits));
      BDB_LAUNCH_KERNEL(kernel, grid, dim3(splitk.threads), bdb_emu::Stream{}, x.data(), c.N, y.data(), M, c.D,
                        splitk.ksplits, splitk.chunks_per_split, partial.data());
    });
    if (const std::string e = bdb_emu::get_last_error(); !e.empty()) return fail(what + " (split-K): " + e);
    const bdb::LaunchShape fin = bdb::elementwise_launch(c.N * M, 1);
    auto finalize = bdb::pairwise_splitk_finalize_kernel<T>;
    BDB_LAUNCH_KERNEL(finalize, dim3(static_cast<unsigned>(fin.blocks)), dim3(fin.threads), bdb_emu::Stream{},
                      static_cast<const acc_t*>(partial.data()), c.N * M, splitk.ksplits, squared, out.data());
  } else {
    const bdb::PairwiseShape shape = bdb::pairwise_launch(c.N, M);
    with_vector_width(x.data(), c.D, [&](auto vec) {
      auto kernel = bdb::pairwise_distance_kernel<T, decltype(vec)::value>;
      const dim3 grid(static_cast<unsigned>(shape.blocks_x), static_cast<unsigned>(shape.blocks_y));
      BDB_LAUNCH_KERNEL(kernel, grid, dim3(shape.threads), bdb_emu::Stream{}, x.data(), y.data(), out.data(), c.N, M,
                        c.D, squared);
    });
  }
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

enum class MinePath { select, splitk, gemm };

const char* path_name(MinePath p) {
  return p == MinePath::select ? "select + finalize" : (p == MinePath::splitk ? "split-K + finalize" : "GEMM form");
}

// Runs one forward path as mining_cuda.cu does; returns the emulator's error ("" if none).
template <class T>
std::string run_mine_path(MinePath path, const MiningCase& c, Buf<T>& x, Buf<int64_t>& labels, Buf<T>& d_ap,
                          Buf<T>& d_an, Buf<int64_t>& idx_p, Buf<int64_t>& idx_n, std::string& shape_note) {
  using acc_t = at::opmath_type<T>;
  const int64_t N = c.N, D = c.D;
  const bdb::LaunchShape fin = bdb::mining_finalize_launch(N);
  const dim3 fin_grid(static_cast<unsigned>(fin.blocks));
  if (path == MinePath::select) {
    const bdb::MiningSelectShape select = bdb::mining_select_launch(N);
    shape_note = "splits=" + std::to_string(select.splits);
    Buf<acc_t> ppv(select.splits * N, acc_t(0)), pnv(select.splits * N, acc_t(0));
    Buf<int64_t> ppi(select.splits * N, -7), pni(select.splits * N, -7);
    with_vector_width(x.data(), D, [&](auto vec) {
      auto kernel = bdb::mining_select_kernel<T, decltype(vec)::value>;
      const dim3 grid(static_cast<unsigned>(select.anchor_blocks), static_cast<unsigned>(select.splits));
      BDB_LAUNCH_KERNEL(kernel, grid, dim3(select.threads), bdb_emu::Stream{}, x.data(), labels.data(), N, D,
                        select.splits, select.tiles_per_split, ppv.data(), ppi.data(), pnv.data(), pni.data());
    });
    if (std::string e = bdb_emu::get_last_error(); !e.empty()) return "(select) " + e;
    auto finalize = bdb::mining_finalize_kernel<T>;
    BDB_LAUNCH_KERNEL(finalize, fin_grid, dim3(fin.threads), bdb_emu::Stream{}, x.data(), N, D, select.splits,
                      ppv.data(), ppi.data(), pnv.data(), pni.data(), d_ap.data(), d_an.data(), idx_p.data(),
                      idx_n.data());
    return bdb_emu::get_last_error();
  }
  if (path == MinePath::splitk) {
    const bdb::MiningSplitKShape splitk = bdb::mining_splitk_launch(N, D);
    shape_note = "ksplits=" + std::to_string(splitk.ksplits);
    Buf<acc_t> partial(splitk.ksplits * N * N, acc_t(-1));
    with_vector_width(x.data(), D, [&](auto vec) {
      auto kernel = bdb::mining_splitk_kernel<T, decltype(vec)::value>;
      const dim3 grid(static_cast<unsigned>(splitk.tile_pairs), static_cast<unsigned>(splitk.ksplits));
      BDB_LAUNCH_KERNEL(kernel, grid, dim3(splitk.threads), bdb_emu::Stream{}, x.data(), N, x.data(), N, D,
                        splitk.ksplits, splitk.chunks_per_split, partial.data());
    });
    if (std::string e = bdb_emu::get_last_error(); !e.empty()) return "(split-K) " + e;
    auto finalize = bdb::mining_splitk_finalize_kernel<T>;
    BDB_LAUNCH_KERNEL(finalize, fin_grid, dim3(fin.threads), bdb_emu::Stream{}, x.data(), labels.data(), N, D,
                      splitk.ksplits, partial.data(), d_ap.data(), d_an.data(), idx_p.data(), idx_n.data());
    return bdb_emu::get_last_error();
  }
  Buf<acc_t> norms(N, acc_t(-1));
  const bdb::LaunchShape ns = bdb::mining_norms_launch(N);
  auto norms_kernel = bdb::mining_norms_kernel<T>;
  BDB_LAUNCH_KERNEL(norms_kernel, dim3(static_cast<unsigned>(ns.blocks)), dim3(ns.threads), bdb_emu::Stream{},
                    x.data(), N, D, norms.data());
  if (std::string e = bdb_emu::get_last_error(); !e.empty()) return "(norms) " + e;
  const bdb::MiningGemmShape gemm = bdb::mining_gemm_launch(N);
  shape_note = "tiles=" + std::to_string(gemm.tiles);
  using Record = bdb::MiningGemmRecord<acc_t>;
  Record poison{};
  Buf<Record> records(gemm.tiles * N, poison);
  const acc_t u = std::numeric_limits<acc_t>::epsilon() / 2;
  const acc_t tiny = std::numeric_limits<acc_t>::min();
  with_vector_width(x.data(), D, [&](auto vec) {
    auto kernel = bdb::mining_gemm_bounds_kernel<T, decltype(vec)::value>;
    const dim3 grid(static_cast<unsigned>(gemm.blocks_x), static_cast<unsigned>(gemm.blocks_y));
    BDB_LAUNCH_KERNEL(kernel, grid, dim3(gemm.threads), bdb_emu::Stream{}, x.data(), labels.data(), norms.data(), N,
                      D, u, tiny, records.data());
  });
  if (std::string e = bdb_emu::get_last_error(); !e.empty()) return "(GEMM bounds) " + e;
  auto finalize = bdb::mining_gemm_finalize_kernel<T>;
  BDB_LAUNCH_KERNEL(finalize, fin_grid, dim3(fin.threads), bdb_emu::Stream{}, x.data(), labels.data(), N, D,
                    static_cast<const Record*>(records.data()), d_ap.data(), d_an.data(), idx_p.data(), idx_n.data());
  return bdb_emu::get_last_error();
}

template <class T>
void check_mine(const MiningCase& c, MinePath path) {
  const std::string what = describe(c, type_name<T>(), path_name(path));
  const std::vector<double> xh = make_x(c, 21);
  const int64_t N = c.N;
  Buf<T> x = to_buffer<T>(xh);
  Buf<int64_t> labels(N, 0);
  for (int64_t i = 0; i < N; ++i) labels[i] = c.labels[i];
  const T nan = static_cast<T>(std::numeric_limits<float>::quiet_NaN());
  Buf<T> d_ap(N, nan), d_an(N, nan);
  Buf<int64_t> idx_p(N, -7), idx_n(N, -7);
  std::string shape_note;
  ++*g_checks_ptr;
  if (const std::string e = run_mine_path<T>(path, c, x, labels, d_ap, d_an, idx_p, idx_n, shape_note); !e.empty()) {
    return fail(what + ": " + e);
  }
  const Mined want = reference_mine(c, xh);
  const std::string splits = " (" + shape_note + ")";
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

// The grouping the backward needs, in plain C++: pair s < N is anchor s's positive (row idx_p[s], none
// when idx_p[s] == s), pair s >= N anchor s - N's negative (row idx_n, none when -1); a stable sort of
// the pairs that have a row, offsets[j] = the first sorted position whose row is >= j, j = 0..N.
void build_csr(const std::vector<int64_t>& idx_p, const std::vector<int64_t>& idx_n, int64_t N,
               std::vector<int32_t>& order, std::vector<int32_t>& offsets) {
  std::vector<int64_t> keys(2 * N);
  for (int64_t s = 0; s < N; ++s) {
    keys[s] = idx_p[s] == s ? -1 : idx_p[s];
    keys[N + s] = idx_n[s];
  }
  order.clear();
  for (int64_t s = 0; s < 2 * N; ++s)
    if (keys[s] >= 0) order.push_back(static_cast<int32_t>(s));
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return keys[a] < keys[b]; });
  offsets.assign(N + 1, 0);
  for (int64_t j = 0; j <= N; ++j) {
    offsets[j] = static_cast<int32_t>(
        std::lower_bound(order.begin(), order.end(), j, [&](int32_t s, int64_t row) { return keys[s] < row; }) -
        order.begin());
  }
}

template <class T>
void check_mine_backward(const MiningCase& c) {
  using acc_t = at::opmath_type<T>;
  const std::string what = describe(c, type_name<T>(), "mining backward (group + chunks + rows)");
  const std::vector<double> xh = make_x(c, 31);
  const int64_t N = c.N, D = c.D;
  Mined fwd = reference_mine(c, xh);
  if (c.hub) {
    for (int64_t i = 0; i < N; ++i) {
      if (c.labels[i] == c.labels[0]) continue;
      fwd.idx_n[i] = 0;
      fwd.d_an[i] = std::sqrt(squared_distance(xh, i, xh, 0, D));
    }
  }
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
  const bdb::MiningBackwardShape shape = bdb::mining_backward_launch(N, D);
  // The host's one int32 workspace: fill (N), offsets (N + 1), chunk_offsets (N + 1), order (2N), rank (2N).
  Buf<int32_t> csr(7 * N + 2, -7);
  int32_t* fill = csr.data();
  int32_t* offsets = fill + N;
  int32_t* chunk_offsets = offsets + N + 1;
  int32_t* order = chunk_offsets + N + 1;
  int32_t* rank = order + 2 * N;
  std::vector<int32_t> order_h, offsets_h;
  build_csr(fwd.idx_p, fwd.idx_n, N, order_h, offsets_h);
  // Both ways to the stable order: the grouping block's own rank loop (what the host does up to
  // kMiningGroupThreads pairs), and the rank + scatter kernels (beyond); the last one run stays.
  int64_t want_chunks = 0;
  for (const bool in_block : {true, false}) {
    if (in_block && !bdb::mining_group_ranks_in_block(N)) continue;
    const std::string how = in_block ? " (group, in-block order)" : " (group, rank + scatter)";
    std::fill(csr.data(), csr.data() + 7 * N + 2, -7);
    auto group = bdb::mining_group_pairs_kernel<int32_t>;
    BDB_LAUNCH_KERNEL(group, dim3(1), dim3(bdb::kMiningGroupThreads), bdb_emu::Stream{}, idx_p.data(), idx_n.data(),
                      N, shape.pairs_per_chunk, in_block, fill, offsets, chunk_offsets, order, rank);
    ++*g_checks_ptr;
    if (const std::string e = bdb_emu::get_last_error(); !e.empty()) return fail(what + how + ": " + e);
    if (!in_block) {
      const bdb::MiningRankShape rs = bdb::mining_rank_launch(N);
      auto rank_kernel = bdb::mining_rank_pairs_kernel<int32_t>;
      BDB_LAUNCH_KERNEL(rank_kernel, dim3(static_cast<unsigned>(rs.blocks_x), static_cast<unsigned>(rs.blocks_y)),
                        dim3(rs.threads), bdb_emu::Stream{}, idx_p.data(), idx_n.data(), N, rank);
      if (const std::string e = bdb_emu::get_last_error(); !e.empty()) return fail(what + how + " rank: " + e);
      const bdb::LaunchShape ss = bdb::mining_scatter_launch(N);
      auto scatter = bdb::mining_scatter_pairs_kernel<int32_t>;
      BDB_LAUNCH_KERNEL(scatter, dim3(static_cast<unsigned>(ss.blocks)), dim3(ss.threads), bdb_emu::Stream{},
                        idx_p.data(), idx_n.data(), N, static_cast<const int32_t*>(offsets),
                        static_cast<const int32_t*>(rank), order);
      if (const std::string e = bdb_emu::get_last_error(); !e.empty()) return fail(what + how + " scatter: " + e);
    }
    want_chunks = 0;
    for (int64_t j = 0; j <= N; ++j) {
      if (offsets[j] != offsets_h[j]) return fail(what + how + ": offsets[" + std::to_string(j) + "] differs");
      if (chunk_offsets[j] != want_chunks) return fail(what + how + ": chunk_offsets[" + std::to_string(j) + "] differs");
      if (j < N) want_chunks += bdb::mining_hub_chunks(offsets_h[j + 1] - offsets_h[j], shape.pairs_per_chunk);
    }
    for (size_t e = 0; e < order_h.size(); ++e) {
      if (order[e] != order_h[e]) return fail(what + how + ": order[" + std::to_string(e) + "] is not the stable order");
    }
  }
  if (c.hub && want_chunks == 0) return fail(what + ": the hub case has no hub chunks");
  Buf<acc_t> partial(shape.max_chunks * D, acc_t(-1));
  Buf<T> dx(N * D, static_cast<T>(std::numeric_limits<float>::quiet_NaN()));
  auto chunks = bdb::mining_backward_chunks_kernel<T>;
  BDB_LAUNCH_KERNEL(chunks, dim3(static_cast<unsigned>(bdb::grid_blocks(shape.max_chunks)), static_cast<unsigned>(shape.d_blocks)),
                    dim3(shape.threads), bdb_emu::Stream{}, grad_ap.data(), grad_an.data(), x.data(), idx_p.data(),
                    idx_n.data(), d_ap.data(), d_an.data(), static_cast<const int32_t*>(order),
                    static_cast<const int32_t*>(offsets), static_cast<const int32_t*>(chunk_offsets), N, D,
                    shape.pairs_per_chunk, shape.max_chunks, partial.data());
  if (const std::string e = bdb_emu::get_last_error(); !e.empty()) return fail(what + " (chunks): " + e);
  auto rows = bdb::mining_backward_rows_kernel<T>;
  BDB_LAUNCH_KERNEL(rows, dim3(static_cast<unsigned>(bdb::grid_blocks(N)), static_cast<unsigned>(shape.d_blocks)),
                    dim3(shape.threads), bdb_emu::Stream{}, grad_ap.data(), grad_an.data(), x.data(), idx_p.data(),
                    idx_n.data(), d_ap.data(), d_an.data(), static_cast<const int32_t*>(order),
                    static_cast<const int32_t*>(offsets), static_cast<const int32_t*>(chunk_offsets), N, D,
                    shape.pairs_per_chunk, static_cast<const acc_t*>(partial.data()), dx.data());
  if (const std::string e = bdb_emu::get_last_error(); !e.empty()) return fail(what + " (rows): " + e);
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

// Every forward path the host can take for T (the GEMM form only for float accumulation), then the
// backward.
template <class T>
void check_case(const MiningCase& c) {
  check_mine<T>(c, MinePath::select);
  check_mine<T>(c, MinePath::splitk);
  if constexpr (!std::is_same_v<T, double>) check_mine<T>(c, MinePath::gemm);
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
      // A hub: 150 anchors take row 0 as their negative (backward chunks of the hub row), 2 GEMM tiles.
      {"hub", 160, 12, {}, 0, true},
  };
  for (int64_t i = 0; i < 160; ++i) cases[5].labels.push_back(i == 0 ? 99 : i % 10);
  for (int64_t i = 0; i < 17; ++i) cases[2].labels.push_back(100 - i);
  for (int64_t i = 0; i < 40; ++i) cases[3].labels.push_back(i % 4);
  // Under TSan every 256-thread block of select and finalize costs about 0.1-0.2 s (real threads, one
  // rendezvous per shuffle), so: float everywhere, double on the small cases, half's 16-bit loads and
  // stores through the backward and pairwise_distance only.
  if (quick) {
    check_mine_backward<float>(cases[5]);
    cases.resize(2);
  }
  for (const MiningCase& c : cases) check_case<float>(c);
  check_case<double>(cases[1]);
  if (!quick) check_case<double>(cases[4]);
  check_mine_backward<c10::Half>(cases[0]);
  check_mine<c10::Half>(cases[2], MinePath::gemm);
  // pairwise_distance: N != M, partial tiles on both sides, 2 x 2 tiles, N = M = 1; split-K where the
  // host takes it (D spans at least two 16-element chunks).
  check_pairwise<float>(cases[0], 37, false, false);
  check_pairwise<float>(cases[0], 37, false, true);
  check_pairwise<float>(cases[0], 5, true, false);
  check_pairwise<float>(cases[0], 5, true, true);
  check_pairwise<double>(cases[1], 5, false, false);
  check_pairwise<c10::Half>(cases[1], 33, true, false);
  if (!quick) {
    check_pairwise<c10::Half>(cases[0], 33, false, true);
    check_pairwise<float>(cases[4], 1, false, false);
  }
}
