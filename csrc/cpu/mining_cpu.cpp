// CPU kernels of pairwise_distance and batch_hard_mine.
//
// Distances are found the fast way (a BLAS GEMM per block of rows: |a|^2 + |b|^2 - 2ab) and
// measured the accurate way (sum((a - b)^2)) where it matters: pairwise_distance re-measures the
// pairs whose GEMM value may have cancelled; batch_hard_mine re-measures every candidate that the
// GEMM's worst-case error bound cannot rule out, so its choice is exactly the winner under the
// direct form (ties to the smallest index) whatever order the BLAS summed in. Only a block of rows
// x N of GEMM output exists at a time; the backward touches the 2N chosen pairs only.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../common/mining.h"
#include "../host/mining_args.h"
#include "../host/pairwise_backward.h"

namespace bdb {
namespace {

// At most this many GEMM outputs exist at once (4 MiB in fp32); a block is at least 16 rows.
constexpr int64_t kGemmBlockElements = int64_t(1) << 20;
// pairwise_distance keeps a GEMM value s only when s > ratio * (|a|^2 + |b|^2): there the rounding
// of the three reductions (about sqrt(D) ulps of |a|^2 + |b|^2 in a blocked GEMM) is a small
// fraction of s. Closer pairs are re-measured in the direct form.
constexpr double kPairwiseKeepRatio = 0.5;

// Below this many rows the one product is cheap and the block products of its lower triangle would
// cost more in calls than they save in flops.
constexpr int64_t kTriangleMinRows = 64;

int64_t gemm_block_rows(int64_t n_rows, int64_t n_cols) {
  const int64_t rows = kGemmBlockElements / std::max<int64_t>(n_cols, 1);
  return std::clamp<int64_t>(rows, 16, std::max<int64_t>(n_rows, 1));
}

// About 256K element operations per task: below that a parallel region costs more than it saves,
// and on a busy machine each one can wait a scheduler quantum for a descheduled worker.
int64_t row_grain(int64_t work_per_row) {
  return std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, work_per_row));
}

// Squared norms of rows [begin, end) into out[begin, end), in the accumulation type (the direct
// distance to a row of D zeros: the same 16-partial order as the direct distances).
template <typename scalar_t, typename acc_t>
void squared_norm_rows(const scalar_t* x, int64_t begin, int64_t end, int64_t D, const scalar_t* zeros, acc_t* out) {
  for (int64_t i = begin; i < end; ++i) out[i] = squared_distance_direct<scalar_t, acc_t>(x + i * D, zeros, D);
}

template <typename scalar_t, typename acc_t>
std::vector<acc_t> squared_norms(const scalar_t* x, int64_t N, int64_t D) {
  std::vector<acc_t> out(N);
  const std::vector<scalar_t> zeros(static_cast<size_t>(D), scalar_t(0));
  at::parallel_for(0, N, row_grain(D), [&](int64_t begin, int64_t end) {
    squared_norm_rows<scalar_t, acc_t>(x, begin, end, D, zeros.data(), out.data());
  });
  return out;
}

// Unit roundoff of the GEMM: IEEE single/double, unless the user allowed reduced-precision fp32
// matmuls (TF32/BF16 in oneDNN), when the bound must assume bf16 rounding.
template <typename acc_t>
acc_t gemm_unit_roundoff() {
  if constexpr (std::is_same_v<acc_t, float>) {
    if (at::globalContext().float32MatmulPrecision() != at::Float32MatmulPrecision::HIGHEST) {
      return std::ldexp(1.0f, -8);
    }
  }
  return std::numeric_limits<acc_t>::epsilon() / 2;
}

template <typename scalar_t>
void pairwise_cpu_impl(const at::Tensor& x, const at::Tensor& y, at::Tensor& out, bool squared) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = x.size(0), M = y.size(0), D = x.size(1);
  scalar_t* op = out.mutable_data_ptr<scalar_t>();
  const at::Tensor xa = x.to(acc_type_of(x.scalar_type()));
  const at::Tensor ya = y.to(acc_type_of(y.scalar_type()));
  const at::Tensor ya_t = ya.t();
  // The direct form reads the accumulation-type copies the GEMM needs anyway: converting fp16/bf16
  // to float is exact, so the sums are the same bits, without a conversion per element per pair.
  const acc_t* xp = xa.const_data_ptr<acc_t>();
  const acc_t* yp = ya.const_data_ptr<acc_t>();
  const std::vector<acc_t> nx = squared_norms<acc_t, acc_t>(xp, N, D);
  const std::vector<acc_t> ny = squared_norms<acc_t, acc_t>(yp, M, D);
  const acc_t keep_ratio = static_cast<acc_t>(kPairwiseKeepRatio);
  const int64_t block = gemm_block_rows(N, M);
  for (int64_t r0 = 0; r0 < N; r0 += block) {
    const int64_t rows = std::min(block, N - r0);
    const at::Tensor dots = at::mm(xa.narrow(0, r0, rows), ya_t).contiguous();
    const acc_t* dp = dots.const_data_ptr<acc_t>();
    at::parallel_for(0, rows, row_grain(M * 4), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t i = r0 + r;
        for (int64_t j = 0; j < M; ++j) {
          const acc_t scale = nx[i] + ny[j];
          acc_t s = scale - 2 * dp[r * M + j];
          // Also catches NaN (and inf - inf) so those come from the direct form too.
          if (!(s > keep_ratio * scale)) s = squared_distance_direct<acc_t, acc_t>(xp + i * D, yp + j * D, D);
          op[i * M + j] = static_cast<scalar_t>(squared ? s : std::sqrt(s));
        }
      }
    });
  }
}

at::Tensor pairwise_distance_cpu(const at::Tensor& x_in, const at::Tensor& y_in, bool squared) {
  const char* op = "bdb_ext::pairwise_distance";
  check_pairwise_args(x_in, y_in, op);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor y = y_in.contiguous();
  at::Tensor out = at::empty({x.size(0), y.size(0)}, x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bdb_ext::pairwise_distance",
                                  [&] { pairwise_cpu_impl<scalar_t>(x, y, out, squared); });
  return out;
}

std::tuple<at::Tensor, at::Tensor> pairwise_distance_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                                                  const at::Tensor& y, const at::Tensor& dist,
                                                                  bool squared) {
  return pairwise_distance_backward_aten(grad, x, y, dist, squared, "bdb_ext::_pairwise_distance_backward");
}

template <typename scalar_t>
void mine_cpu_impl(const at::Tensor& x, const int64_t* labels, scalar_t* d_ap, scalar_t* d_an, int64_t* idx_p,
                   int64_t* idx_n) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = x.size(0), D = x.size(1);
  // Detached: the products below are internal (and at::mm_out refuses an input that requires grad).
  const at::Tensor xa = x.detach().to(acc_type_of(x.scalar_type()));
  const at::Tensor xa_t = xa.t();
  // The direct form reads the accumulation-type copy (exact for fp16/bf16; see pairwise_cpu_impl).
  const acc_t* xp = xa.const_data_ptr<acc_t>();
  std::vector<acc_t> norms;
  const acc_t u = gemm_unit_roundoff<acc_t>();
  const acc_t tiny = std::numeric_limits<acc_t>::min();
  const acc_t inf = std::numeric_limits<acc_t>::infinity();
  const int64_t block = gemm_block_rows(N, N);
  // x x^T is symmetric. When one block holds every row, only its lower block triangle is computed:
  // the rows are cut into 2T blocks (T threads) and block k's rows are multiplied by the first k + 1
  // blocks of x; blocks k and 2T - 1 - k form one task (equal work: 2T + 1 block products), each
  // task's products single-threaded inside the parallel region: (2T + 1) / 4T of the full product's
  // flops, and no fork-join of a threaded GEMM per small product. At N = 128, D = 1536 fp32 on the
  // 2-core AMD EPYC, batch_hard_mine took 0.29 ms against 0.31 ms with three threaded products of
  // the halves of x, and the forward with the loss went from 0.95x to 1.14x of torch.compile.
  // Blocks keep at least 16 rows (more, smaller products would cost more in calls than they save).
  const bool triangle = block >= N && N >= kTriangleMinRows;
  const int64_t tasks = std::clamp<int64_t>(N / 32, 1, std::max(1, at::get_num_threads()));
  const int64_t tri_blocks = 2 * tasks;
  const int64_t tri_rows = (N + tri_blocks - 1) / tri_blocks;
  // Where row i's own products end: entries (i, j) with j >= its block's end are read at (j, i).
  auto triangle_end = [&](int64_t i) { return std::min(N, (i / tri_rows + 1) * tri_rows); };
  at::Tensor gram;
  if (triangle) {
    // The tasks also take their rows' squared norms: one parallel region fewer.
    gram = at::empty({N, N}, xa.options());
    norms.resize(N);
    const std::vector<acc_t> zeros(static_cast<size_t>(D), acc_t(0));
    at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        for (const int64_t k : {t, tri_blocks - 1 - t}) {
          const int64_t r0 = k * tri_rows;
          if (r0 >= N) continue;
          const int64_t rows = std::min(tri_rows, N - r0);
          const int64_t cols = triangle_end(r0);
          squared_norm_rows<acc_t, acc_t>(xp, r0, r0 + rows, D, zeros.data(), norms.data());
          at::Tensor out = gram.narrow(0, r0, rows).narrow(1, 0, cols);
          at::mm_out(out, xa.narrow(0, r0, rows), xa.narrow(0, 0, cols).t());
        }
      }
    });
  } else {
    norms = squared_norms<acc_t, acc_t>(xp, N, D);
  }
  for (int64_t r0 = 0; r0 < N; r0 += block) {
    const int64_t rows = std::min(block, N - r0);
    at::Tensor dots;
    if (!triangle) dots = at::mm(xa.narrow(0, r0, rows), xa_t).contiguous();
    // Per row: two branch-free sweeps over the GEMM row, plus the direct form for the few
    // contenders (usually the two winners); rows are shared between threads even at N = 128.
    at::parallel_for(0, rows, row_grain(N * 16 + 4 * D), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> gathered(triangle ? N : 0);
      for (int64_t r = begin; r < end; ++r) {
        const int64_t i = r0 + r;
        const acc_t* row = nullptr;
        if (!triangle) {
          row = dots.const_data_ptr<acc_t>() + r * N;
        } else {
          const acc_t* g = gram.const_data_ptr<acc_t>();
          const int64_t e = triangle_end(i);
          std::copy(g + i * N, g + i * N + e, gathered.begin());
          for (int64_t j = e; j < N; ++j) gathered[j] = g[j * N + i];
          row = gathered.data();
        }
        const int64_t li = labels[i];
        const acc_t norm_i = norms[i];
        auto approx = [&](int64_t j) { return norm_i + norms[j] - 2 * row[j]; };
        auto bound = [&](int64_t j) { return gemm_form_error_bound(norm_i, norms[j], D, u, tiny); };
        // Pass 1, no winner needed: the true largest positive distance is at least s_j - e_j for
        // every positive j, the true smallest negative one at most s_j + e_j for every negative j
        // (e_j bounds the GEMM form's error). Branch-free selects, so the loop runs at the speed
        // of its arithmetic whatever the data; NaN never wins a compare here (see pass 2).
        acc_t pos_floor = -inf;
        acc_t neg_ceiling = inf;
        for (int64_t j = 0; j < N; ++j) {
          const acc_t s = approx(j);
          const acc_t e = bound(j);
          const bool same = labels[j] == li;
          const acc_t lo = (same && j != i) ? s - e : -inf;
          const acc_t hi = same ? inf : s + e;
          pos_floor = lo > pos_floor ? lo : pos_floor;
          neg_ceiling = hi < neg_ceiling ? hi : neg_ceiling;
        }
        // Pass 2: every candidate whose true distance could reach those bounds is measured in
        // the direct form; the exact winner is among them. (Comparisons are negated so NaN
        // candidates are measured too.)
        MiningBest<acc_t> exact;
        exact.reset();
        for (int64_t j = 0; j < N; ++j) {
          if (j == i) continue;
          const bool same = labels[j] == li;
          const acc_t s = approx(j);
          const acc_t e = bound(j);
          const bool contender = same ? !(s + e < pos_floor) : !(s - e > neg_ceiling);
          if (contender) exact.offer(squared_distance_direct<acc_t, acc_t>(xp + i * D, xp + j * D, D), j, same);
        }
        const MinedPair<acc_t> pos = mined_positive(i, exact.pos_index, exact.pos_value);
        const MinedPair<acc_t> neg = mined_negative(exact.neg_index, exact.neg_value);
        d_ap[i] = static_cast<scalar_t>(pos.distance);
        idx_p[i] = pos.index;
        d_an[i] = static_cast<scalar_t>(neg.distance);
        idx_n[i] = neg.index;
      }
    });
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_hard_mine_cpu(const at::Tensor& x_in,
                                                                                const at::Tensor& labels_in) {
  const char* op = "bdb_ext::batch_hard_mine";
  check_mine_args(x_in, labels_in, op);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor labels = labels_in.contiguous();
  const int64_t N = x.size(0);
  at::Tensor d_ap = at::empty({N}, x.options());
  at::Tensor d_an = at::empty({N}, x.options());
  at::Tensor idx_p = at::empty({N}, x.options().dtype(at::kLong));
  at::Tensor idx_n = at::empty({N}, x.options().dtype(at::kLong));
  if (N == 0) return {d_ap, d_an, idx_p, idx_n};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bdb_ext::batch_hard_mine", [&] {
    mine_cpu_impl<scalar_t>(x, labels.const_data_ptr<int64_t>(), d_ap.mutable_data_ptr<scalar_t>(),
                            d_an.mutable_data_ptr<scalar_t>(), idx_p.mutable_data_ptr<int64_t>(),
                            idx_n.mutable_data_ptr<int64_t>());
  });
  return {d_ap, d_an, idx_p, idx_n};
}

// dx_j = w_p(j) (x_j - x_p(j)) + w_n(j) (x_j - x_n(j))            (j as an anchor)
//      + sum over anchors a choosing j of w(a) (x_j - x_a)         (j as a chosen pair)
// The second sum is gathered through a counting sort of the 2N chosen pairs by their target row
// (positives, then negatives, each in anchor order): every row is written by one task, in a fixed
// order, without atomics.
template <typename scalar_t>
void mine_backward_cpu_impl(const scalar_t* g_ap, const scalar_t* g_an, const scalar_t* x, const int64_t* idx_p,
                            const int64_t* idx_n, const scalar_t* d_ap, const scalar_t* d_an, scalar_t* dx,
                            int64_t N, int64_t D) {
  using acc_t = at::opmath_type<scalar_t>;
  std::vector<acc_t> w(2 * N);
  std::vector<int64_t> target(2 * N);
  for (int64_t i = 0; i < N; ++i) {
    const bool has_p = idx_p[i] != i;
    const bool has_n = has_pair(idx_n[i]);
    w[i] = distance_grad_weight<acc_t>(g_ap[i], d_ap[i], has_p);
    w[N + i] = distance_grad_weight<acc_t>(g_an[i], d_an[i], has_n);
    target[i] = has_p ? idx_p[i] : -1;
    target[N + i] = has_n ? idx_n[i] : -1;
  }
  std::vector<int64_t> offsets(N + 1, 0);
  for (int64_t s = 0; s < 2 * N; ++s) {
    if (target[s] >= 0) ++offsets[target[s] + 1];
  }
  for (int64_t j = 0; j < N; ++j) offsets[j + 1] += offsets[j];
  std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
  std::vector<int64_t> sources(offsets[N]);
  for (int64_t s = 0; s < 2 * N; ++s) {
    if (target[s] >= 0) sources[fill[target[s]]++] = s;
  }
  at::parallel_for(0, N, row_grain(D * 4), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(static_cast<size_t>(D));
    for (int64_t j = begin; j < end; ++j) {
      const scalar_t* xj = x + j * D;
      std::fill(acc.begin(), acc.end(), acc_t(0));
      auto add = [&](acc_t weight, int64_t other) {
        if (weight == acc_t(0)) return;
        const scalar_t* xo = x + other * D;
        for (int64_t d = 0; d < D; ++d) {
          acc[d] += weight * (static_cast<acc_t>(xj[d]) - static_cast<acc_t>(xo[d]));
        }
      };
      if (target[j] >= 0) add(w[j], target[j]);
      if (target[N + j] >= 0) add(w[N + j], target[N + j]);
      for (int64_t e = offsets[j]; e < offsets[j + 1]; ++e) add(w[sources[e]], sources[e] % N);
      scalar_t* out = dx + j * D;
      for (int64_t d = 0; d < D; ++d) out[d] = static_cast<scalar_t>(acc[d]);
    }
  });
}

at::Tensor batch_hard_mine_backward_cpu(const at::Tensor& grad_ap, const at::Tensor& grad_an, const at::Tensor& x_in,
                                        const at::Tensor& idx_p_in, const at::Tensor& idx_n_in,
                                        const at::Tensor& d_ap, const at::Tensor& d_an) {
  const char* op = "bdb_ext::_batch_hard_mine_backward";
  const MineGradInput in =
      prepare_mine_backward(grad_ap, grad_an, x_in, idx_p_in, idx_n_in, d_ap, d_an, op, IndexCheck::kOnHost);
  const int64_t N = in.x.size(0), D = in.x.size(1);
  at::Tensor dx = at::empty({N, D}, in.x.options());
  if (dx.numel() == 0) return dx;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.x.scalar_type(), "bdb_ext::_batch_hard_mine_backward", [&] {
    mine_backward_cpu_impl<scalar_t>(in.grad_ap.const_data_ptr<scalar_t>(), in.grad_an.const_data_ptr<scalar_t>(),
                                     in.x.const_data_ptr<scalar_t>(), in.idx_p.const_data_ptr<int64_t>(),
                                     in.idx_n.const_data_ptr<int64_t>(), in.d_ap.const_data_ptr<scalar_t>(),
                                     in.d_an.const_data_ptr<scalar_t>(), dx.mutable_data_ptr<scalar_t>(), N, D);
  });
  return dx;
}

}  // namespace
}  // namespace bdb

TORCH_LIBRARY_IMPL(bdb_ext, CPU, m) {
  m.impl("pairwise_distance", &bdb::pairwise_distance_cpu);
  m.impl("_pairwise_distance_backward", &bdb::pairwise_distance_backward_cpu);
  m.impl("batch_hard_mine", &bdb::batch_hard_mine_cpu);
  m.impl("_batch_hard_mine_backward", &bdb::batch_hard_mine_backward_cpu);
}
