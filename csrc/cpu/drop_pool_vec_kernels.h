// The body of drop_pool's vectorised forward, compiled once per CPU capability by
// drop_pool_vec_{default,avx2,avx512}.cpp (see drop_pool_vec.h). Include only from those units,
// after vec_prelude.h and with CPU_CAPABILITY defined: everything here lives in
// bdb::cpu::CPU_CAPABILITY, so the copies never share a symbol.
//
// Rules kept from the scalar kernels (and shared with CUDA through max_candidate.h):
// - max: the first kept row-major position attaining the max; NaN beats everything (the first NaN
//   wins); dropped positions count as 0 and win only when every kept value is below 0 (argmax -1).
// - avg: sum of kept values / (H * W), in an order that does not depend on the vector width, so every
//   machine (SSE2, AVX2, AVX-512) returns the same bits.
#pragma once

#ifndef CPU_CAPABILITY
#error "define CPU_CAPABILITY (DEFAULT, AVX2 or AVX512) before including drop_pool_vec_kernels.h"
#endif

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

namespace bdb::cpu::CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// Reduced-precision inputs are pooled in float; float and double in themselves.
template <typename scalar_t>
using acc_of = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// Vectorized<acc>::size() consecutive values of p, as acc.
template <typename scalar_t>
inline Vectorized<acc_of<scalar_t>> load_acc(const scalar_t* p) {
  if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
    return Vectorized<scalar_t>::loadu(p);
  } else {
    Vectorized<float> out;
    at::vec::load_to_float(p, out);
    return out;
  }
}

// Bit k set where lane k of a comparison mask (all-ones / all-zeros lanes) is set.
template <typename acc_t>
inline int lanes_set(const Vectorized<acc_t>& mask) {
  constexpr int kAll = (1 << Vectorized<acc_t>::size()) - 1;
  // zero_mask() marks the all-zero lanes; an all-ones lane is a NaN pattern, never equal to 0.
  return ~mask.zero_mask() & kAll;
}

template <typename acc_t>
inline bool is_nan(acc_t v) {
  return v != v;
}

// Max over one NCHW plane's kept positions, then the first kept position holding it:
// 1. a NaN-propagating vector max (at::vec::maximum) over every kept run, the plane then sits in L1;
// 2. a vector compare against the winner (or a NaN test), stopping at the first lane that hits.
// Pass 2 reads from L1 and usually stops early, so the arg-max costs far less than a second load.
template <typename scalar_t>
void max_plane(const scalar_t* p, const MapLayout& m, const DropRect& r, scalar_t* out, int64_t* argmax) {
  using acc_t = acc_of<scalar_t>;
  using Vec = Vectorized<acc_t>;
  constexpr int64_t L = Vec::size();
  constexpr acc_t kLowest = -std::numeric_limits<acc_t>::infinity();
  Vec vmax(kLowest);
  acc_t smax = kLowest;
  bool any_kept = false;
  for_each_kept_run(m, r, [&](int64_t begin, int64_t end) {
    any_kept = true;
    int64_t i = begin;
    for (; i + L <= end; i += L) vmax = at::vec::maximum(vmax, load_acc(p + i));
    for (; i < end; ++i) {
      const acc_t v = static_cast<acc_t>(p[i]);
      smax = (v > smax || is_nan(v)) ? v : smax;
    }
  });
  acc_t best = kLowest;
  int64_t idx = -1;
  if (any_kept) {
    alignas(64) acc_t lanes[L];
    vmax.store(lanes);
    best = smax;
    for (int64_t k = 0; k < L; ++k) best = (lanes[k] > best || is_nan(lanes[k])) ? lanes[k] : best;
    const bool want_nan = is_nan(best);
    const Vec target(best);
    for_each_kept_run(m, r, [&](int64_t begin, int64_t end) {
      if (idx >= 0) return;
      int64_t i = begin;
      for (; i + L <= end; i += L) {
        const Vec v = load_acc(p + i);
        const int hits = lanes_set<acc_t>(want_nan ? v.isnan() : (v == target));
        if (hits != 0) {
          idx = i + __builtin_ctz(static_cast<unsigned>(hits));
          return;
        }
      }
      for (; i < end; ++i) {
        const acc_t v = static_cast<acc_t>(p[i]);
        if (want_nan ? is_nan(v) : v == best) {
          idx = i;
          return;
        }
      }
    });
    // The value at the first hit (of 0.0 and -0.0, the one stored first).
    best = static_cast<acc_t>(p[idx]);
  }
  settle_against_dropped_zero(!r.empty(), best, idx);
  *out = static_cast<scalar_t>(best);
  *argmax = idx;
}

// Sum over one NCHW plane's kept positions in 16 fixed lanes: lane k adds the elements 16j + k of
// each kept run, whatever the vector width, then the lanes fold in a fixed tree. The same bits on
// every instruction set, unlike a reduction over the native vector width.
template <typename scalar_t>
acc_of<scalar_t> sum_plane(const scalar_t* p, const MapLayout& m, const DropRect& r) {
  using acc_t = acc_of<scalar_t>;
  using Vec = Vectorized<acc_t>;
  constexpr int64_t kLanes = 16;
  constexpr int64_t L = Vec::size();
  static_assert(kLanes % L == 0, "the vector width must divide the 16 fixed lanes");
  constexpr int64_t kParts = kLanes / L;
  Vec part[kParts];
  for (int64_t k = 0; k < kParts; ++k) part[k] = Vec(acc_t(0));
  acc_t tail = 0;
  for_each_kept_run(m, r, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + kLanes <= end; i += kLanes) {
      for (int64_t k = 0; k < kParts; ++k) part[k] = part[k] + load_acc(p + i + k * L);
    }
    for (; i < end; ++i) tail += static_cast<acc_t>(p[i]);
  });
  alignas(64) acc_t lanes[kLanes];
  for (int64_t k = 0; k < kParts; ++k) part[k].store(lanes + k * L);
  for (int64_t width = kLanes / 2; width > 0; width /= 2) {
    for (int64_t k = 0; k < width; ++k) lanes[k] += lanes[k + width];
  }
  return lanes[0] + tail;
}

template <typename scalar_t>
void pool_planes(const DropPoolProblem& pb) {
  using acc_t = acc_of<scalar_t>;
  const MapLayout& m = pb.m;
  const int64_t hw = m.H * m.W;
  const auto* x = static_cast<const scalar_t*>(pb.x);
  auto* out = static_cast<scalar_t*>(pb.out);
  at::parallel_for(0, m.N * m.C, grain_for(hw), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const scalar_t* p = x + plane * hw;
      if (pb.is_max) {
        max_plane(p, m, pb.r, out + plane, pb.argmax + plane);
      } else {
        out[plane] = static_cast<scalar_t>(sum_plane(p, m, pb.r) / static_cast<acc_t>(hw));
      }
    }
  });
}

// channels_last: each task owns a block of channels of one sample and walks the kept positions in
// row-major order, updating the whole block per position (contiguous loads; the running max and
// arg-max stay in an L1-resident buffer). Positions are visited in increasing order, so a strict
// `>` keeps the first position on ties and a NaN is taken only over a non-NaN: the max_candidate
// order without an index compare. The arg-max is carried as float (exact below 2^24 positions).
constexpr int64_t kChannelBlock = 512;

template <typename scalar_t>
void pool_channels_block(const DropPoolProblem& pb, int64_t n, int64_t c0, int64_t c1, float* best,
                         float* idx) {
  using Vec = Vectorized<float>;
  constexpr int64_t L = Vec::size();
  const MapLayout& m = pb.m;
  const int64_t hw = m.H * m.W;
  const int64_t nc = c1 - c0;
  const int64_t nvec = nc - nc % L;
  const auto* x = static_cast<const scalar_t*>(pb.x);
  bool first = true;
  for (int64_t h = 0; h < m.H; ++h) {
    for (int64_t w = 0; w < m.W; ++w) {
      if (pb.r.dropped(h, w)) continue;
      const int64_t pos = h * m.W + w;
      const scalar_t* v = x + ((n * m.H + h) * m.W + w) * m.C + c0;
      if (first || !pb.is_max) {
        // The first kept position seeds the max (so an all -inf map still has an arg-max); the
        // average just adds.
        for (int64_t c = 0; c < nvec; c += L) {
          const Vec xv = load_acc(v + c);
          (first ? xv : Vec::loadu(best + c) + xv).store(best + c);
        }
        for (int64_t c = nvec; c < nc; ++c) best[c] = first ? static_cast<float>(v[c]) : best[c] + static_cast<float>(v[c]);
        if (first && pb.is_max) std::fill(idx, idx + nc, static_cast<float>(pos));
        first = false;
        continue;
      }
      const Vec vpos(static_cast<float>(pos));
      for (int64_t c = 0; c < nvec; c += L) {
        const Vec xv = load_acc(v + c);
        const Vec b = Vec::loadu(best + c);
        const Vec take = (xv > b) | (xv.isnan() & (b == b));
        Vec::blendv(b, xv, take).store(best + c);
        Vec::blendv(Vec::loadu(idx + c), vpos, take).store(idx + c);
      }
      for (int64_t c = nvec; c < nc; ++c) {
        const float xv = static_cast<float>(v[c]);
        if (xv > best[c] || (is_nan(xv) && !is_nan(best[c]))) {
          best[c] = xv;
          idx[c] = static_cast<float>(pos);
        }
      }
    }
  }
  auto* out = static_cast<scalar_t*>(pb.out) + n * m.C + c0;
  if (!pb.is_max) {
    for (int64_t c = 0; c < nc; ++c) out[c] = first ? scalar_t(0) : static_cast<scalar_t>(best[c] / static_cast<float>(hw));
    return;
  }
  int64_t* am = pb.argmax + n * m.C + c0;
  for (int64_t c = 0; c < nc; ++c) {
    float b = first ? -std::numeric_limits<float>::infinity() : best[c];
    int64_t i = first ? -1 : static_cast<int64_t>(idx[c]);
    settle_against_dropped_zero(!pb.r.empty(), b, i);
    out[c] = static_cast<scalar_t>(b);
    am[c] = i;
  }
}

// The scalar channels_last loop, for float64 and for maps too large for a float arg-max.
template <typename scalar_t>
void pool_channels_scalar(const DropPoolProblem& pb) {
  using acc_t = acc_of<scalar_t>;
  const MapLayout& m = pb.m;
  const auto* x = static_cast<const scalar_t*>(pb.x);
  auto* out = static_cast<scalar_t*>(pb.out);
  at::parallel_for(0, m.N, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> best(m.C);
    std::vector<int64_t> idx(m.C);
    for (int64_t n = begin; n < end; ++n) {
      std::fill(best.begin(), best.end(), pb.is_max ? -std::numeric_limits<acc_t>::infinity() : acc_t(0));
      std::fill(idx.begin(), idx.end(), int64_t(-1));
      for (int64_t h = 0; h < m.H; ++h) {
        for (int64_t w = 0; w < m.W; ++w) {
          if (pb.r.dropped(h, w)) continue;
          const scalar_t* v = x + ((n * m.H + h) * m.W + w) * m.C;
          const int64_t pos = h * m.W + w;
          for (int64_t c = 0; c < m.C; ++c) {
            const acc_t xv = static_cast<acc_t>(v[c]);
            if (!pb.is_max) {
              best[c] += xv;
            } else if (max_candidate_better(xv, pos, best[c], idx[c])) {
              best[c] = xv;
              idx[c] = pos;
            }
          }
        }
      }
      for (int64_t c = 0; c < m.C; ++c) {
        if (pb.is_max) {
          settle_against_dropped_zero(!pb.r.empty(), best[c], idx[c]);
          out[n * m.C + c] = static_cast<scalar_t>(best[c]);
          pb.argmax[n * m.C + c] = idx[c];
        } else {
          out[n * m.C + c] = static_cast<scalar_t>(best[c] / static_cast<acc_t>(m.H * m.W));
        }
      }
    }
  });
}

template <typename scalar_t>
void pool_channels(const DropPoolProblem& pb) {
  const MapLayout& m = pb.m;
  if constexpr (std::is_same_v<scalar_t, double>) {
    pool_channels_scalar<scalar_t>(pb);
  } else if (m.H * m.W > (int64_t(1) << 24)) {
    pool_channels_scalar<scalar_t>(pb);
  } else {
    const int64_t blocks = (m.C + kChannelBlock - 1) / kChannelBlock;
    at::parallel_for(0, m.N * blocks, 1, [&](int64_t begin, int64_t end) {
      alignas(64) float best[kChannelBlock];
      alignas(64) float idx[kChannelBlock];
      for (int64_t item = begin; item < end; ++item) {
        const int64_t n = item / blocks;
        const int64_t c0 = (item % blocks) * kChannelBlock;
        pool_channels_block<scalar_t>(pb, n, c0, std::min(m.C, c0 + kChannelBlock), best, idx);
      }
    });
  }
}

template <typename scalar_t>
void drop_pool_run(const DropPoolProblem& pb) {
  if (pb.m.channels_last) {
    pool_channels<scalar_t>(pb);
  } else {
    pool_planes<scalar_t>(pb);
  }
}

}  // namespace

DropPoolKernel drop_pool_kernel(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::ScalarType::Float:
      return &drop_pool_run<float>;
    case c10::ScalarType::Double:
      return &drop_pool_run<double>;
    case c10::ScalarType::Half:
      return &drop_pool_run<c10::Half>;
    case c10::ScalarType::BFloat16:
      return &drop_pool_run<c10::BFloat16>;
    default:
      return nullptr;
  }
}

}  // namespace bdb::cpu::CPU_CAPABILITY
