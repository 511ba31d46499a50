// The order in which drop_pool's "max" mode picks its winner, shared by the CPU loop, the CUDA
// warp reduction and the emulator so that all three agree on ties and NaN.
//
// A candidate is (value, index into the H*W plane); index < 0 means "no kept position yet".
// NaN beats everything (torch.amax propagates NaN); among equal values the smaller index wins,
// which makes the result independent of the order in which threads combine their partials.
#pragma once

#include <cstdint>

#include "macros.h"

namespace bdb {

template <typename acc_t>
BDB_INLINE bool is_nan_value(acc_t v) {
  return v != v;
}

// Is (v, idx) a better candidate than (best_v, best_idx) where the largest value wins (kLargest) or
// the smallest? Any candidate beats none, NaN beats every number, and of equals the smaller index wins.
template <bool kLargest, typename acc_t>
BDB_INLINE bool extreme_candidate_better(acc_t v, int64_t idx, acc_t best_v, int64_t best_idx) {
  if (idx < 0) return false;
  if (best_idx < 0) return true;
  const bool v_nan = is_nan_value(v);
  const bool best_nan = is_nan_value(best_v);
  if (v_nan || best_nan) {
    if (v_nan && best_nan) return idx < best_idx;
    return v_nan;
  }
  if (kLargest ? v > best_v : v < best_v) return true;
  return v == best_v && idx < best_idx;
}

template <typename acc_t>
BDB_INLINE bool max_candidate_better(acc_t v, int64_t idx, acc_t best_v, int64_t best_idx) {
  return extreme_candidate_better<true>(v, idx, best_v, best_idx);
}

// Dropped positions hold 0. They win only when every kept value is below 0 (or none is kept);
// then no input position gets the gradient, which the index -1 records.
template <typename acc_t>
BDB_INLINE void settle_against_dropped_zero(bool any_dropped, acc_t& best_v, int64_t& best_idx) {
  if (!any_dropped) return;
  if (best_idx < 0 || (!is_nan_value(best_v) && best_v < acc_t(0))) {
    best_v = acc_t(0);
    best_idx = -1;
  }
}

}  // namespace bdb
