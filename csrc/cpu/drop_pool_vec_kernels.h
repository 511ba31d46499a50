// The body of drop_pool's vectorised forward, compiled once per CPU capability by
// drop_pool_vec_{default,avx2}.cpp (see drop_pool_vec.h). Include only from those units,
// after vec_prelude.h and with CPU_CAPABILITY defined: everything here lives in
// bdb::cpu::CPU_CAPABILITY, so the copies never share a symbol.
//
// Rules kept from the scalar kernels (and shared with CUDA through max_candidate.h):
// - max: the first kept row-major position attaining the max; NaN beats everything (the first NaN
//   wins); dropped positions count as 0 and win only when every kept value is below 0 (argmax -1).
// - avg: sum of kept values / (H * W), in an order that does not depend on the vector width, so every
//   machine (SSE2, AVX2, AVX-512) returns the same bits.
// - with_argmax=False (argmax == nullptr): the same values, from a pass that tracks no positions.
//
// Memory: an NCHW plane's dropped rows are never loaded as data, but each dropped cache line is
// touched (one load, touch_lines) where it lies in the plane, between the kept lines: with the
// holes left in, the hardware stream prefetcher lost its run over the map and fetched those lines
// anyway while keeping fewer misses in flight. On the 2-core AMD EPYC (128x2048x24x8 fp32, 2
// threads, interleaved medians, one process each): the arg-max kernel took 8.45 and 7.93 ms with
// holes and a software prefetch, 7.41 and 7.00 ms with the dropped lines touched before each plane
// and no prefetch; the values-only kernel, touching in plane order rather than before the plane,
// 5.42-5.80 ms against 5.56-6.11 ms (3.94 against 4.25 in a faster process), as fast as reading a
// plane with nothing dropped. The software prefetch that helped the earlier one-plane-at-a-time
// kernel now costs time in every variant, so there is none.
#pragma once

#ifndef CPU_CAPABILITY
#error "define CPU_CAPABILITY (DEFAULT or AVX2) before including drop_pool_vec_kernels.h"
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

// The largest lane of v (at::vec::maximum: a NaN lane wins).
template <typename acc_t>
inline acc_t lanes_max(const Vectorized<acc_t>& v) {
  using Vec = Vectorized<acc_t>;
  return at::vec::vec_reduce_all<acc_t>([](const Vec& a, const Vec& b) { return at::vec::maximum(a, b); }, v);
}

// Which positions of an NCHW plane are kept, built once per call (the rectangle is the same for
// every plane). The plane is cut into chunks of 16 positions; a chunk is dropped (never read as
// data, only its cache lines touched, in plane order: see the top of the file), kept (read as is)
// or mixed (read through a lane mask). Consecutive kept chunks form one segment, consecutive
// dropped ones too, so for a full-width rectangle a plane is three segments and no mask. Positions
// past the last whole chunk (H*W % 16 of them) are the scalar tail.
template <typename acc_t>
struct PlaneMasks {
  using Vec = Vectorized<acc_t>;
  static constexpr int64_t kChunk = 16;
  static_assert(kChunk % Vec::size() == 0, "the vector width must divide the 16-position chunks");
  struct Segment {
    int64_t begin, end;  // positions, multiples of kChunk
    bool mixed;          // one chunk read through lanes[begin, end)
    bool dropped;        // only touched (touch_lines)
  };
  int64_t hw;
  int64_t whole;                  // positions in whole chunks: hw rounded down to kChunk
  std::vector<acc_t> lanes;       // per position < whole: all-ones bits when kept, 0 when dropped
  std::vector<acc_t> positions;   // per position < whole: the position itself, as acc_t
  std::vector<uint8_t> kept;      // per position
  std::vector<Segment> segments;  // in plane order
  bool any_kept = false;
  bool any_kept_chunk = false;    // a kept or mixed segment: the vector passes read some value

  PlaneMasks(const MapLayout& m, const DropRect& r)
      : hw(m.H * m.W), whole(hw - hw % kChunk), lanes(whole), positions(whole), kept(hw) {
    acc_t ones;
    std::memset(&ones, 0xFF, sizeof(ones));
    for (int64_t i = 0; i < hw; ++i) {
      kept[i] = !r.dropped(i / m.W, i % m.W);
      any_kept |= kept[i] != 0;
      if (i < whole) {
        lanes[i] = kept[i] ? ones : acc_t(0);
        positions[i] = static_cast<acc_t>(i);
      }
    }
    for (int64_t c = 0; c < whole; c += kChunk) {
      int64_t n = 0;
      for (int64_t i = c; i < c + kChunk; ++i) n += kept[i];
      const bool dropped = n == 0;
      const bool mixed = n > 0 && n < kChunk;
      any_kept_chunk |= !dropped;
      const bool joins = !mixed && !segments.empty() && !segments.back().mixed &&
                         segments.back().dropped == dropped && segments.back().end == c;
      if (joins) {
        segments.back().end = c + kChunk;
      } else {
        segments.push_back({c, c + kChunk, mixed, dropped});
      }
    }
  }
  Vec mask(int64_t i) const { return Vec::loadu(lanes.data() + i); }
  Vec position(int64_t i) const { return Vec::loadu(positions.data() + i); }
};

// One load per cache line of a dropped segment of the plane at p, its value unused (see the top of
// the file). The first load is at the segment's first byte, not at the start of its line: that line
// may begin before the tensor's storage (a plane 0 of a map not aligned to 64 bytes).
template <typename scalar_t, typename Segment>
inline void touch_lines(const scalar_t* p, const Segment& sg) {
  constexpr uintptr_t kLine = 64;
  const uintptr_t end = reinterpret_cast<uintptr_t>(p + sg.end);
  for (uintptr_t at = reinterpret_cast<uintptr_t>(p + sg.begin); at < end; at = (at & ~(kLine - 1)) + kLine) {
    const char touched = *reinterpret_cast<const volatile char*>(at);
    (void)touched;
  }
}

// Where v > val (ordered compare: never for NaN), val = v and pos = at.
template <typename acc_t>
inline void keep_greater(const Vectorized<acc_t>& v, const Vectorized<acc_t>& at, Vectorized<acc_t>& val,
                         Vectorized<acc_t>& pos) {
  const Vectorized<acc_t> gt = v > val;
  val = Vectorized<acc_t>::blendv(val, v, gt);
  pos = Vectorized<acc_t>::blendv(pos, at, gt);
}

// The vector pass of one NCHW plane's max: each lane of two accumulators keeps its running max
// and where it first reached it (vectors go to the accumulators alternately, so positions grow
// within a lane and a strict `>` keeps the earlier one; positions carried as acc_t, exact below
// 2^24), dropped lanes read as -inf; the two merge lane by lane into `val` and `at`. A running sum
// probes for NaN (one add, where a NaN test and an or would be two). Returns false, leaving the
// plane to max_plane_scan, when the probe turns NaN (a NaN, or +inf and -inf both summed): rare.
template <typename scalar_t>
bool max_plane_lanes(const scalar_t* p, const PlaneMasks<acc_of<scalar_t>>& pm, Vectorized<acc_of<scalar_t>>& val,
                     Vectorized<acc_of<scalar_t>>& at) {
  using acc_t = acc_of<scalar_t>;
  using Vec = Vectorized<acc_t>;
  constexpr int64_t L = Vec::size();
  const Vec lowest(-std::numeric_limits<acc_t>::infinity());
  const acc_t sentinel = static_cast<acc_t>(pm.hw);
  Vec val0 = lowest, val1 = lowest;
  Vec pos0(sentinel), pos1(sentinel);
  Vec probe0(acc_t(0)), probe1(acc_t(0));
  // Named accumulators (an array indexed at run time would live on the stack and put a
  // store-to-load forward into every step's dependency chain).
  for (const auto& sg : pm.segments) {
    int64_t i = sg.begin;
    if (sg.dropped) {
      touch_lines(p, sg);
      continue;
    }
    if (sg.mixed) {
      for (; i < sg.end; i += L) {
        const Vec v = Vec::blendv(lowest, load_acc(p + i), pm.mask(i));
        keep_greater(v, pm.position(i), val0, pos0);
        probe0 = probe0 + v;
      }
      continue;
    }
    for (; i + 2 * L <= sg.end; i += 2 * L) {
      const Vec v0 = load_acc(p + i);
      const Vec v1 = load_acc(p + i + L);
      keep_greater(v0, pm.position(i), val0, pos0);
      keep_greater(v1, pm.position(i + L), val1, pos1);
      probe0 = probe0 + v0;
      probe1 = probe1 + v1;
    }
    for (; i < sg.end; i += L) {
      const Vec v = load_acc(p + i);
      keep_greater(v, pm.position(i), val0, pos0);
      probe0 = probe0 + v;
    }
  }
  const Vec probe_sum = probe0 + probe1;
  if (lanes_set<acc_t>(probe_sum != probe_sum) != 0) return false;
  const Vec take = (val1 > val0) | ((val1 == val0) & (pos1 < pos0));
  val = Vec::blendv(val0, val1, take);
  at = Vec::blendv(pos0, pos1, take);
  return true;
}

// The general two-pass form, for planes with a NaN or only -inf kept values (and planes too large
// for exact acc_t positions): 1. a NaN-propagating max of the kept lanes (at::vec::maximum);
// 2. a vector compare against the winner (or a NaN test), stopping at the first kept lane that hits.
template <typename scalar_t>
void max_plane_scan(const scalar_t* p, const PlaneMasks<acc_of<scalar_t>>& pm, acc_of<scalar_t>& best_out,
                    int64_t& idx_out) {
  using acc_t = acc_of<scalar_t>;
  using Vec = Vectorized<acc_t>;
  constexpr int64_t L = Vec::size();
  const Vec lowest(-std::numeric_limits<acc_t>::infinity());
  Vec vmax = lowest;
  for (int64_t i = 0; i < pm.whole; i += L) vmax = at::vec::maximum(vmax, Vec::blendv(lowest, load_acc(p + i), pm.mask(i)));
  acc_t best = lanes_max(vmax);
  for (int64_t i = pm.whole; i < pm.hw; ++i) {
    const acc_t v = static_cast<acc_t>(p[i]);
    if (pm.kept[i] && (v > best || is_nan(v))) best = v;
  }
  const bool want_nan = is_nan(best);
  const Vec target(best);
  int64_t idx = -1;
  for (int64_t i = 0; i < pm.whole && idx < 0; i += L) {
    const Vec v = load_acc(p + i);
    const int hits = lanes_set<acc_t>((want_nan ? v.isnan() : (v == target)) & pm.mask(i));
    if (hits != 0) idx = i + __builtin_ctz(static_cast<unsigned>(hits));
  }
  for (int64_t i = pm.whole; i < pm.hw && idx < 0; ++i) {
    const acc_t v = static_cast<acc_t>(p[i]);
    if (pm.kept[i] && (want_nan ? is_nan(v) : v == best)) idx = i;
  }
  idx_out = idx;
  best_out = static_cast<acc_t>(p[idx]);
}

// Max and first position for a group of up to L consecutive NCHW planes (L = the vector width).
// Each plane's vector pass leaves L lanes (max, first position); reducing them lane by lane in every
// plane would be a chain of shuffles per plane, which for a 192-element plane cost as much as the
// pass and held back the next plane's loads. Instead the group's L x L lane values are transposed
// (at::vec::transpose_mxn), so one vertical max and one vertical min over L rows settle all L planes
// at once. The tail (H*W % 16 positions) is then applied per plane in order. Planes whose probe
// saw a NaN, or whose kept values are all -inf (no lane moved), go to max_plane_scan: both rare.
template <typename scalar_t>
void max_plane_group(const scalar_t* x, int64_t first_plane, int64_t count, const PlaneMasks<acc_of<scalar_t>>& pm,
                     bool any_dropped, scalar_t* out, int64_t* argmax) {
  using acc_t = acc_of<scalar_t>;
  using Vec = Vectorized<acc_t>;
  constexpr int64_t L = Vec::size();
  const acc_t sentinel = static_cast<acc_t>(pm.hw);
  const Vec lowest(-std::numeric_limits<acc_t>::infinity());
  alignas(64) acc_t vals[L * L], ats[L * L], vals_t[L * L], ats_t[L * L];
  bool lanes_ok[L];
  for (int64_t q = 0; q < L; ++q) {
    Vec val = lowest, at(sentinel);
    lanes_ok[q] = q < count && max_plane_lanes(x + (first_plane + q) * pm.hw, pm, val, at);
    if (!lanes_ok[q]) {
      val = lowest;
      at = Vec(sentinel);
    }
    val.store(vals + q * L);
    at.store(ats + q * L);
  }
  at::vec::transpose_mxn<acc_t, L, L>(vals, L, vals_t, L);
  at::vec::transpose_mxn<acc_t, L, L>(ats, L, ats_t, L);
  // Row k of the transposes holds lane k of every plane; no NaN is among them (see above).
  Vec best = lowest;
  for (int64_t k = 0; k < L; ++k) {
    const Vec row = Vec::loadu(vals_t + k * L);
    best = Vec::blendv(best, row, row > best);
  }
  Vec first(sentinel);
  for (int64_t k = 0; k < L; ++k) {
    const Vec hit = Vec::blendv(Vec(sentinel), Vec::loadu(ats_t + k * L), Vec::loadu(vals_t + k * L) == best);
    first = at::vec::minimum(first, hit);
  }
  alignas(64) acc_t bests[L], firsts[L];
  best.store(bests);
  first.store(firsts);
  for (int64_t q = 0; q < count; ++q) {
    const scalar_t* p = x + (first_plane + q) * pm.hw;
    acc_t b = bests[q];
    acc_t f = firsts[q];
    // No lane moved although whole chunks were read: every kept value there is -inf.
    bool ok = lanes_ok[q] && !(f == sentinel && pm.any_kept_chunk);
    for (int64_t i = pm.whole; ok && i < pm.hw; ++i) {
      if (!pm.kept[i]) continue;
      const acc_t v = static_cast<acc_t>(p[i]);
      if (is_nan(v)) ok = false;
      if (v > b || (v == b && f == sentinel)) {
        b = v;
        f = static_cast<acc_t>(i);
      }
    }
    acc_t value = -std::numeric_limits<acc_t>::infinity();
    int64_t idx = -1;
    if (ok && f != sentinel) {
      idx = static_cast<int64_t>(f);
      // The value at the first hit (of 0.0 and -0.0, the one stored first).
      value = static_cast<acc_t>(p[idx]);
    } else if (pm.any_kept) {
      max_plane_scan(p, pm, value, idx);
    }
    settle_against_dropped_zero(any_dropped, value, idx);
    out[first_plane + q] = static_cast<scalar_t>(value);
    argmax[first_plane + q] = idx;
  }
}

// The max alone, for a call that wants no argmax: up to L consecutive NCHW planes, each read in one
// vector pass of at::vec::maximum (kept chunks as they are, mixed ones with dropped lanes blended to
// -inf, two chains), then the group's lanes transposed so that L - 1 vertical maximums settle all L
// planes, as max_plane_group does. No position is carried: no position blends, and no size limit.
// The value equals the arg-max kernels' bit for bit: a max that is neither NaN nor zero has one bit
// pattern; a NaN (the first NaN's bits) or a zero (+0.0 or -0.0, whichever comes first) is settled
// by max_plane_scan, which finds the first position.
template <typename scalar_t>
void max_value_group(const scalar_t* x, int64_t first_plane, int64_t count, const PlaneMasks<acc_of<scalar_t>>& pm,
                     bool any_dropped, scalar_t* out) {
  using acc_t = acc_of<scalar_t>;
  using Vec = Vectorized<acc_t>;
  constexpr int64_t L = Vec::size();
  static_assert(PlaneMasks<acc_t>::kChunk % (2 * L) == 0, "a chunk must hold the two chains' vectors");
  const Vec lowest(-std::numeric_limits<acc_t>::infinity());
  alignas(64) acc_t lanes[L * L], lanes_t[L * L];
  for (int64_t q = 0; q < L; ++q) {
    Vec m0 = lowest, m1 = lowest;
    if (q < count) {
      const scalar_t* p = x + (first_plane + q) * pm.hw;
      for (const auto& sg : pm.segments) {
        if (sg.dropped) {
          touch_lines(p, sg);
          continue;
        }
        for (int64_t i = sg.begin; i < sg.end; i += 2 * L) {
          Vec v0 = load_acc(p + i), v1 = load_acc(p + i + L);
          if (sg.mixed) {
            v0 = Vec::blendv(lowest, v0, pm.mask(i));
            v1 = Vec::blendv(lowest, v1, pm.mask(i + L));
          }
          m0 = at::vec::maximum(m0, v0);
          m1 = at::vec::maximum(m1, v1);
        }
      }
    }
    at::vec::maximum(m0, m1).store(lanes + q * L);
  }
  at::vec::transpose_mxn<acc_t, L, L>(lanes, L, lanes_t, L);
  Vec best = Vec::loadu(lanes_t);
  for (int64_t k = 1; k < L; ++k) best = at::vec::maximum(best, Vec::loadu(lanes_t + k * L));
  alignas(64) acc_t bests[L];
  best.store(bests);
  for (int64_t q = 0; q < count; ++q) {
    const scalar_t* p = x + (first_plane + q) * pm.hw;
    acc_t value = bests[q];
    for (int64_t i = pm.whole; i < pm.hw; ++i) {
      const acc_t v = static_cast<acc_t>(p[i]);
      if (pm.kept[i] && (v > value || is_nan(v))) value = v;
    }
    int64_t idx = pm.any_kept ? 0 : -1;  // a stand-in: settle_against_dropped_zero reads only its sign
    if (pm.any_kept && (is_nan(value) || value == acc_t(0))) max_plane_scan(p, pm, value, idx);
    settle_against_dropped_zero(any_dropped, value, idx);
    out[first_plane + q] = static_cast<scalar_t>(value);
  }
}

// Sum over one NCHW plane's kept positions in 16 fixed lanes: lane k adds the kept positions
// 16j + k in order, whatever the vector width, the lanes fold in a fixed tree, then the tail
// (H*W % 16 positions) is added in order. The same bits on every instruction set, unlike a
// reduction over the native width.
template <typename scalar_t>
acc_of<scalar_t> sum_plane(const scalar_t* p, const PlaneMasks<acc_of<scalar_t>>& pm) {
  using acc_t = acc_of<scalar_t>;
  using Vec = Vectorized<acc_t>;
  constexpr int64_t kLanes = PlaneMasks<acc_t>::kChunk;
  constexpr int64_t L = Vec::size();
  constexpr int64_t kParts = kLanes / L;
  Vec part[kParts];
  for (int64_t k = 0; k < kParts; ++k) part[k] = Vec(acc_t(0));
  for (const auto& sg : pm.segments) {
    if (sg.dropped) {
      touch_lines(p, sg);
      continue;
    }
    for (int64_t i = sg.begin; i < sg.end; i += kLanes) {
      for (int64_t k = 0; k < kParts; ++k) {
        Vec v = load_acc(p + i + k * L);
        if (sg.mixed) v = v & pm.mask(i + k * L);
        part[k] = part[k] + v;
      }
    }
  }
  alignas(64) acc_t lanes[kLanes];
  for (int64_t k = 0; k < kParts; ++k) part[k].store(lanes + k * L);
  for (int64_t width = kLanes / 2; width > 0; width /= 2) {
    for (int64_t k = 0; k < width; ++k) lanes[k] += lanes[k + width];
  }
  acc_t sum = lanes[0];
  for (int64_t i = pm.whole; i < pm.hw; ++i) {
    if (pm.kept[i]) sum += static_cast<acc_t>(p[i]);
  }
  return sum;
}

template <typename scalar_t>
void pool_planes(const DropPoolProblem& pb) {
  using acc_t = acc_of<scalar_t>;
  const MapLayout& m = pb.m;
  const int64_t hw = m.H * m.W;
  const PlaneMasks<acc_t> pm(m, pb.r);
  const auto* x = static_cast<const scalar_t*>(pb.x);
  auto* out = static_cast<scalar_t*>(pb.out);
  // Positions are carried as acc_t in the vector pass; past 2^digits they are not exact.
  const bool exact_positions = hw < (int64_t(1) << std::numeric_limits<acc_t>::digits);
  at::parallel_for(0, m.N * m.C, grain_for(hw), [&](int64_t begin, int64_t end) {
    constexpr int64_t L = Vectorized<acc_t>::size();
    if (pb.is_max && pb.argmax == nullptr) {
      for (int64_t plane = begin; plane < end; plane += L) {
        max_value_group(x, plane, std::min<int64_t>(L, end - plane), pm, !pb.r.empty(), out);
      }
      return;
    }
    if (pb.is_max && exact_positions) {
      for (int64_t plane = begin; plane < end; plane += L) {
        max_plane_group(x, plane, std::min<int64_t>(L, end - plane), pm, !pb.r.empty(), out, pb.argmax);
      }
      return;
    }
    for (int64_t plane = begin; plane < end; ++plane) {
      const scalar_t* p = x + plane * hw;
      if (pb.is_max) {
        acc_t best = -std::numeric_limits<acc_t>::infinity();
        int64_t idx = -1;
        if (pm.any_kept) max_plane_scan(p, pm, best, idx);
        settle_against_dropped_zero(!pb.r.empty(), best, idx);
        out[plane] = static_cast<scalar_t>(best);
        pb.argmax[plane] = idx;
      } else {
        out[plane] = static_cast<scalar_t>(sum_plane(p, pm) / static_cast<acc_t>(hw));
      }
    }
  });
}

// channels_last. The kept positions of the map, in row-major order (the same for every sample).
inline std::vector<int64_t> kept_positions(const MapLayout& m, const DropRect& r) {
  std::vector<int64_t> kept;
  for (int64_t h = 0; h < m.H; ++h) {
    for (int64_t w = 0; w < m.W; ++w) {
      if (!r.dropped(h, w)) kept.push_back(h * m.W + w);
    }
  }
  return kept;
}

// One channel of one sample in scalar code, by the max_candidate order: the fallback for the
// channels whose vector probe saw a NaN or an inf, and for channels past the last whole vector.
template <typename scalar_t>
void pool_channel_scalar(const DropPoolProblem& pb, const std::vector<int64_t>& kept, int64_t n, int64_t c) {
  using acc_t = acc_of<scalar_t>;
  const MapLayout& m = pb.m;
  const scalar_t* base = static_cast<const scalar_t*>(pb.x) + n * m.H * m.W * m.C + c;
  acc_t best = pb.is_max ? -std::numeric_limits<acc_t>::infinity() : acc_t(0);
  int64_t idx = -1;
  for (const int64_t q : kept) {
    const acc_t v = static_cast<acc_t>(base[q * m.C]);
    if (!pb.is_max) {
      best += v;
    } else if (max_candidate_better(v, q, best, idx)) {
      best = v;
      idx = q;
    }
  }
  auto* out = static_cast<scalar_t*>(pb.out) + n * m.C + c;
  if (!pb.is_max) {
    *out = static_cast<scalar_t>(best / static_cast<acc_t>(m.H * m.W));
    return;
  }
  settle_against_dropped_zero(!pb.r.empty(), best, idx);
  *out = static_cast<scalar_t>(best);
  if (pb.argmax != nullptr) pb.argmax[n * m.C + c] = idx;
}

// Channels [c0, c1) of sample n. The map is read in memory order (position by position, each a
// contiguous run of channels) while the running max, its position and a NaN probe per channel sit
// in L1-resident buffers; G kept positions are applied per pass over the buffers, so each buffer
// load and store serves G data vectors. Positions only grow, so a strict `>` keeps the first one on
// ties. The probe is a running sum: NaN when a NaN (or +inf and -inf) was seen; such channels are
// redone in scalar code, where the first NaN wins. The average adds in position order per
// channel: the same bits on every instruction set.
constexpr int64_t kChannelBlock = 512;
constexpr int kPositionGroup = 4;

struct ChannelBuffers {
  alignas(64) float val[kChannelBlock];
  alignas(64) float at[kChannelBlock];
  alignas(64) float probe[kChannelBlock];
};

template <int G, typename scalar_t>
void apply_positions(const DropPoolProblem& pb, const scalar_t* const* rows, const int64_t* q, int64_t nvec,
                     ChannelBuffers& buf) {
  using Vec = Vectorized<float>;
  constexpr int64_t L = Vec::size();
  if (!pb.is_max) {
    for (int64_t c = 0; c < nvec; c += L) {
      Vec sum = Vec::loadu(buf.val + c);
      for (int g = 0; g < G; ++g) sum = sum + load_acc(rows[g] + c);
      sum.store(buf.val + c);
    }
    return;
  }
  Vec qv[G];
  for (int g = 0; g < G; ++g) qv[g] = Vec(static_cast<float>(q[g]));
  for (int64_t c = 0; c < nvec; c += L) {
    Vec val = Vec::loadu(buf.val + c);
    Vec at = Vec::loadu(buf.at + c);
    Vec probe = Vec::loadu(buf.probe + c);
    for (int g = 0; g < G; ++g) {
      const Vec v = load_acc(rows[g] + c);
      keep_greater(v, qv[g], val, at);
      probe = probe + v;
    }
    val.store(buf.val + c);
    at.store(buf.at + c);
    probe.store(buf.probe + c);
  }
}

template <typename scalar_t>
void pool_channel_block(const DropPoolProblem& pb, const std::vector<int64_t>& kept, int64_t n, int64_t c0,
                        int64_t c1, ChannelBuffers& buf) {
  using Vec = Vectorized<float>;
  constexpr int64_t L = Vec::size();
  const MapLayout& m = pb.m;
  const int64_t nvec = (c1 - c0) - (c1 - c0) % L;
  const scalar_t* base = static_cast<const scalar_t*>(pb.x) + n * m.H * m.W * m.C + c0;
  // The first kept position seeds the buffers.
  const int64_t first = kept[0];
  for (int64_t c = 0; c < nvec; c += L) {
    const Vec v = load_acc(base + first * m.C + c);
    v.store(buf.val + c);
    v.store(buf.probe + c);
    Vec(static_cast<float>(first)).store(buf.at + c);
  }
  const int64_t count = static_cast<int64_t>(kept.size());
  int64_t t = 1;
  const scalar_t* rows[kPositionGroup];
  for (; t + kPositionGroup <= count; t += kPositionGroup) {
    for (int g = 0; g < kPositionGroup; ++g) rows[g] = base + kept[t + g] * m.C;
    apply_positions<kPositionGroup, scalar_t>(pb, rows, kept.data() + t, nvec, buf);
  }
  for (; t < count; ++t) {
    rows[0] = base + kept[t] * m.C;
    apply_positions<1, scalar_t>(pb, rows, kept.data() + t, nvec, buf);
  }
  auto* out = static_cast<scalar_t*>(pb.out) + n * m.C + c0;
  const float hw = static_cast<float>(m.H * m.W);
  for (int64_t c = 0; c < nvec; ++c) {
    if (!pb.is_max) {
      out[c] = static_cast<scalar_t>(buf.val[c] / hw);
    } else if (is_nan(buf.probe[c])) {
      pool_channel_scalar<scalar_t>(pb, kept, n, c0 + c);
    } else {
      float b = buf.val[c];
      int64_t i = static_cast<int64_t>(buf.at[c]);
      settle_against_dropped_zero(!pb.r.empty(), b, i);
      out[c] = static_cast<scalar_t>(b);
      if (pb.argmax != nullptr) pb.argmax[n * m.C + c0 + c] = i;
    }
  }
  for (int64_t c = c0 + nvec; c < c1; ++c) pool_channel_scalar<scalar_t>(pb, kept, n, c);
}

template <typename scalar_t>
void pool_channels_vectorised(const DropPoolProblem& pb) {
  const MapLayout& m = pb.m;
  const std::vector<int64_t> kept = kept_positions(m, pb.r);
  const int64_t blocks = (m.C + kChannelBlock - 1) / kChannelBlock;
  at::parallel_for(0, m.N * blocks, 1, [&](int64_t begin, int64_t end) {
    ChannelBuffers buf;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / blocks;
      const int64_t c0 = (item % blocks) * kChannelBlock;
      const int64_t c1 = std::min(m.C, c0 + kChannelBlock);
      if (kept.empty()) {
        for (int64_t c = c0; c < c1; ++c) pool_channel_scalar<scalar_t>(pb, kept, n, c);
      } else {
        pool_channel_block<scalar_t>(pb, kept, n, c0, c1, buf);
      }
    }
  });
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
          if (pb.argmax != nullptr) pb.argmax[n * m.C + c] = idx[c];
        } else {
          out[n * m.C + c] = static_cast<scalar_t>(best[c] / static_cast<acc_t>(m.H * m.W));
        }
      }
    }
  });
}

template <typename scalar_t>
void pool_channels(const DropPoolProblem& pb) {
  if constexpr (std::is_same_v<scalar_t, double>) {
    pool_channels_scalar<scalar_t>(pb);
  } else if (pb.m.H * pb.m.W > (int64_t(1) << 24)) {
    pool_channels_scalar<scalar_t>(pb);  // positions past 2^24 are not exact in float
  } else {
    pool_channels_vectorised<scalar_t>(pb);
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
