// CPU kernels of the drop ops: parallel over (n, c) planes (NCHW) or over samples and positions
// (channels_last), dropped rows skipped rather than multiplied, inner loops left simple enough for
// the compiler to vectorise.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../common/max_candidate.h"
#include "../host/drop_args.h"

namespace bdb {
namespace {

// About 32K elements of work per task keeps thread start-up small against the work.
int64_t grain_for(int64_t elements_per_item) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, elements_per_item));
}

// Calls fn(begin, end) for each maximal run of kept positions of one NCHW plane, in order, as offsets
// into the plane. A full-width rectangle is one dropped run, so a plane is at most three runs.
template <typename Fn>
void for_each_kept_run(const MapLayout& m, const DropRect& r, Fn&& fn) {
  const int64_t hw = m.H * m.W;
  if (r.empty()) {
    fn(int64_t(0), hw);
    return;
  }
  int64_t pos = 0;
  auto dropped_run = [&](int64_t begin, int64_t end) {
    if (begin > pos) fn(pos, begin);
    pos = end;
  };
  if (r.width == m.W) {
    dropped_run(r.top * m.W, (r.top + r.height) * m.W);
  } else {
    for (int64_t h = r.top; h < r.top + r.height; ++h) dropped_run(h * m.W + r.left, h * m.W + r.left + r.width);
  }
  if (hw > pos) fn(pos, hw);
}

template <typename scalar_t>
void drop_block_cpu_impl(const scalar_t* x, scalar_t* y, const MapLayout& m, const DropRect& r) {
  const scalar_t zero(0);
  if (!m.channels_last) {
    const int64_t hw = m.H * m.W;
    at::parallel_for(0, m.N * m.C, grain_for(hw), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* src = x + plane * hw;
        scalar_t* dst = y + plane * hw;
        // Zero the plane's dropped runs in between copying its kept runs.
        int64_t done = 0;
        for_each_kept_run(m, r, [&](int64_t run_begin, int64_t run_end) {
          std::fill(dst + done, dst + run_begin, zero);
          std::copy(src + run_begin, src + run_end, dst + run_begin);
          done = run_end;
        });
        std::fill(dst + done, dst + hw, zero);
      }
    });
  } else {
    const int64_t row = m.W * m.C;
    at::parallel_for(0, m.N * m.H, grain_for(row), [&](int64_t begin, int64_t end) {
      for (int64_t nh = begin; nh < end; ++nh) {
        const int64_t h = nh % m.H;
        const scalar_t* src = x + nh * row;
        scalar_t* dst = y + nh * row;
        if (!r.row_dropped(h)) {
          std::copy(src, src + row, dst);
        } else {
          std::copy(src, src + r.left * m.C, dst);
          std::fill(dst + r.left * m.C, dst + (r.left + r.width) * m.C, zero);
          std::copy(src + (r.left + r.width) * m.C, src + row, dst + (r.left + r.width) * m.C);
        }
      }
    });
  }
}

at::Tensor drop_block_cpu(const at::Tensor& input, const at::Tensor& rect, const char* op) {
  check_feature_map(input, op);
  check_rect(rect, input, op);
  bool channels_last = false;
  const at::Tensor x = dense_feature_map(input, channels_last);
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(memory_format_of(channels_last)));
  if (x.numel() == 0) return y;
  const MapLayout m = map_layout_of(x, channels_last);
  const DropRect r = load_rect(make_rect_arg(rect.contiguous(), true), m.H, m.W);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bdb_ext::batch_drop_block", [&] {
    drop_block_cpu_impl(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), m, r);
  });
  return y;
}

at::Tensor batch_drop_block_cpu(const at::Tensor& x, const at::Tensor& rect) {
  return drop_block_cpu(x, rect, "bdb_ext::batch_drop_block");
}

// Zeroing the rectangle is its own derivative.
at::Tensor batch_drop_block_backward_cpu(const at::Tensor& grad_y, const at::Tensor& rect) {
  return drop_block_cpu(grad_y, rect, "bdb_ext::_batch_drop_block_backward");
}

// Max over one NCHW plane's kept positions, in two passes over a plane that sits in L1:
// 1. the max over 8 independent lanes (no loop-carried dependency; `v > m ? v : m` is exactly
//    maxps, so it vectorises), with a NaN probe (v - v is NaN only for NaN or inf) since NaN never
//    wins a `>` compare;
// 2. the first kept position holding the winner (the first NaN when there is one), which fixes
//    the tie rule (smallest index) without a compare-and-select of indices in the hot loop.
template <typename scalar_t, typename acc_t>
void max_plane(const scalar_t* p, const MapLayout& m, const DropRect& r, acc_t& best_out, int64_t& idx_out) {
  constexpr acc_t kLowest = -std::numeric_limits<acc_t>::infinity();
  acc_t lane_max[8];
  acc_t probe[8];
  for (int k = 0; k < 8; ++k) {
    lane_max[k] = kLowest;
    probe[k] = acc_t(0);
  }
  bool any_kept = false;
  for_each_kept_run(m, r, [&](int64_t begin, int64_t end) {
    any_kept = true;
    int64_t i = begin;
    for (; i + 8 <= end; i += 8) {
      for (int k = 0; k < 8; ++k) {
        const acc_t v = static_cast<acc_t>(p[i + k]);
        lane_max[k] = v > lane_max[k] ? v : lane_max[k];
        probe[k] += v - v;
      }
    }
    for (; i < end; ++i) {
      const acc_t v = static_cast<acc_t>(p[i]);
      lane_max[0] = v > lane_max[0] ? v : lane_max[0];
      probe[0] += v - v;
    }
  });
  acc_t best = kLowest;
  bool maybe_nan = false;
  for (int k = 0; k < 8; ++k) {
    best = lane_max[k] > best ? lane_max[k] : best;
    maybe_nan |= probe[k] != probe[k];
  }
  int64_t idx = -1;
  if (any_kept) {
    bool found = false;
    // A probe hit may be an inf, not a NaN: look for a NaN first, and fall back to the max.
    for (int pass = maybe_nan ? 0 : 1; pass < 2 && !found; ++pass) {
      auto matches = [&](acc_t v) { return pass == 0 ? (v != v) : (v == best); };
      for_each_kept_run(m, r, [&](int64_t begin, int64_t end) {
        int64_t i = begin;
        // Whole chunks of 8 are tested without branching; only the chunk that hits is scanned.
        for (; i + 8 <= end && !found; i += 8) {
          bool hit = false;
          for (int k = 0; k < 8; ++k) hit |= matches(static_cast<acc_t>(p[i + k]));
          if (!hit) continue;
          for (int k = 0; k < 8 && !found; ++k) {
            if (matches(static_cast<acc_t>(p[i + k]))) {
              found = true;
              idx = i + k;
            }
          }
        }
        for (; i < end && !found; ++i) {
          if (matches(static_cast<acc_t>(p[i]))) {
            found = true;
            idx = i;
          }
        }
      });
      if (found) best = static_cast<acc_t>(p[idx]);
    }
  }
  settle_against_dropped_zero(!r.empty(), best, idx);
  best_out = best;
  idx_out = idx;
}

// Sum over one NCHW plane's kept positions with 8 independent partial sums: a fixed order (so
// deterministic) that the compiler can still vectorise.
template <typename scalar_t, typename acc_t>
acc_t sum_plane(const scalar_t* p, const MapLayout& m, const DropRect& r) {
  acc_t part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for_each_kept_run(m, r, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + 8 <= end; i += 8) {
      for (int k = 0; k < 8; ++k) part[k] += static_cast<acc_t>(p[i + k]);
    }
    for (; i < end; ++i) part[0] += static_cast<acc_t>(p[i]);
  });
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

template <typename scalar_t>
void drop_pool_cpu_impl(const scalar_t* x, scalar_t* out, int64_t* argmax, const MapLayout& m,
                        const DropRect& r, bool is_max) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t hw = m.H * m.W;
  if (!m.channels_last) {
    at::parallel_for(0, m.N * m.C, grain_for(hw), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* p = x + plane * hw;
        if (is_max) {
          acc_t best;
          int64_t idx;
          max_plane(p, m, r, best, idx);
          out[plane] = static_cast<scalar_t>(best);
          argmax[plane] = idx;
        } else {
          out[plane] = static_cast<scalar_t>(sum_plane<scalar_t, acc_t>(p, m, r) / static_cast<acc_t>(hw));
        }
      }
    });
    return;
  }
  // channels_last: for each sample, walk the kept positions in row-major order and update all C
  // channels at once (contiguous, vectorisable); strict `>` keeps the first position on ties.
  at::parallel_for(0, m.N, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> best(m.C);
    std::vector<int64_t> idx(m.C);
    for (int64_t n = begin; n < end; ++n) {
      std::fill(best.begin(), best.end(), is_max ? -std::numeric_limits<acc_t>::infinity() : acc_t(0));
      std::fill(idx.begin(), idx.end(), int64_t(-1));
      for (int64_t h = 0; h < m.H; ++h) {
        for (int64_t w = 0; w < m.W; ++w) {
          if (r.dropped(h, w)) continue;
          const scalar_t* v = x + ((n * m.H + h) * m.W + w) * m.C;
          const int64_t pos = h * m.W + w;
          if (is_max) {
            for (int64_t c = 0; c < m.C; ++c) {
              if (max_candidate_better(static_cast<acc_t>(v[c]), pos, best[c], idx[c])) {
                best[c] = static_cast<acc_t>(v[c]);
                idx[c] = pos;
              }
            }
          } else {
            for (int64_t c = 0; c < m.C; ++c) best[c] += static_cast<acc_t>(v[c]);
          }
        }
      }
      for (int64_t c = 0; c < m.C; ++c) {
        if (is_max) {
          settle_against_dropped_zero(!r.empty(), best[c], idx[c]);
          out[n * m.C + c] = static_cast<scalar_t>(best[c]);
          argmax[n * m.C + c] = idx[c];
        } else {
          out[n * m.C + c] = static_cast<scalar_t>(best[c] / static_cast<acc_t>(hw));
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> drop_pool_cpu(const at::Tensor& input, const at::Tensor& rect,
                                                 c10::string_view mode) {
  const char* op = "bdb_ext::drop_pool";
  check_feature_map(input, op);
  check_rect(rect, input, op);
  const bool is_max = parse_pool_mode(mode, op);
  bool channels_last = false;
  const at::Tensor x = dense_feature_map(input, channels_last);
  const int64_t N = x.size(0), C = x.size(1);
  at::Tensor out = at::empty({N, C}, x.options());
  at::Tensor argmax = at::empty({is_max ? N : 0, is_max ? C : 0}, x.options().dtype(at::kLong));
  if (out.numel() == 0) return {out, argmax};
  const MapLayout m = map_layout_of(x, channels_last);
  const DropRect r = load_rect(make_rect_arg(rect.contiguous(), true), m.H, m.W);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bdb_ext::drop_pool", [&] {
    drop_pool_cpu_impl(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                       is_max ? argmax.mutable_data_ptr<int64_t>() : nullptr, m, r, is_max);
  });
  return {out, argmax};
}

template <typename scalar_t>
void drop_pool_backward_cpu_impl(const scalar_t* g, const int64_t* argmax, scalar_t* dx, const MapLayout& m,
                                 const DropRect& r, bool is_max) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t hw = m.H * m.W;
  const scalar_t zero(0);
  auto avg_grad = [&](int64_t plane) {
    return static_cast<scalar_t>(static_cast<acc_t>(g[plane]) / static_cast<acc_t>(hw));
  };
  if (!m.channels_last) {
    at::parallel_for(0, m.N * m.C, grain_for(hw), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        scalar_t* d = dx + plane * hw;
        if (is_max) {
          std::fill(d, d + hw, zero);
          if (argmax[plane] >= 0) d[argmax[plane]] = g[plane];
          continue;
        }
        const scalar_t v = avg_grad(plane);
        for (int64_t h = 0; h < m.H; ++h) {
          scalar_t* row = d + h * m.W;
          std::fill(row, row + m.W, v);
          if (r.row_dropped(h)) std::fill(row + r.left, row + r.left + r.width, zero);
        }
      }
    });
    return;
  }
  at::parallel_for(0, m.N * hw, grain_for(m.C), [&](int64_t begin, int64_t end) {
    for (int64_t npos = begin; npos < end; ++npos) {
      const int64_t n = npos / hw;
      const int64_t pos = npos % hw;
      const bool dropped = r.dropped(pos / m.W, pos % m.W);
      scalar_t* d = dx + npos * m.C;
      const scalar_t* gn = g + n * m.C;
      if (is_max) {
        const int64_t* an = argmax + n * m.C;
        for (int64_t c = 0; c < m.C; ++c) d[c] = an[c] == pos ? gn[c] : zero;
      } else if (dropped) {
        std::fill(d, d + m.C, zero);
      } else {
        for (int64_t c = 0; c < m.C; ++c) d[c] = avg_grad(n * m.C + c);
      }
    }
  });
}

at::Tensor drop_pool_backward_cpu(const at::Tensor& grad_out_in, const at::Tensor& argmax_in, const at::Tensor& rect,
                                  c10::string_view mode, at::IntArrayRef input_size, bool channels_last) {
  const char* op = "bdb_ext::_drop_pool_backward";
  const bool is_max = parse_pool_mode(mode, op);
  check_pool_backward_args(grad_out_in, argmax_in, input_size, is_max, op);
  at::Tensor dx = at::empty(input_size, grad_out_in.options().memory_format(memory_format_of(channels_last)));
  check_rect(rect, dx, op);
  if (dx.numel() == 0) return dx;
  const at::Tensor grad_out = grad_out_in.contiguous();
  const at::Tensor argmax = argmax_in.contiguous();
  const MapLayout m = map_layout_of(dx, channels_last);
  const DropRect r = load_rect(make_rect_arg(rect.contiguous(), true), m.H, m.W);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dx.scalar_type(), "bdb_ext::_drop_pool_backward", [&] {
    drop_pool_backward_cpu_impl(grad_out.const_data_ptr<scalar_t>(), is_max ? argmax.const_data_ptr<int64_t>() : nullptr,
                                dx.mutable_data_ptr<scalar_t>(), m, r, is_max);
  });
  return dx;
}

}  // namespace
}  // namespace bdb

TORCH_LIBRARY_IMPL(bdb_ext, CPU, m) {
  m.impl("batch_drop_block", &bdb::batch_drop_block_cpu);
  m.impl("_batch_drop_block_backward", &bdb::batch_drop_block_backward_cpu);
  m.impl("drop_pool", &bdb::drop_pool_cpu);
  m.impl("_drop_pool_backward", &bdb::drop_pool_backward_cpu);
}
