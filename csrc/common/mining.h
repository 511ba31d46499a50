// The rules of batch-hard mining shared by the CPU kernel, the CUDA kernels and the emulator, so all
// of them pick the same pair on ties and NaN and weight the gradient the same way.
//
// A candidate is (squared distance s, index j); index < 0 means "none yet". Hardest positive = the
// largest s, hardest negative = the smallest s; NaN wins both (as torch.amax / amin propagate it);
// among equal values the smaller index wins. The order is total, so the result does not depend on
// the order in which threads or tiles combine their partial winners.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "macros.h"
#include "max_candidate.h"

namespace bdb {

// Is (v, idx) a better hardest positive than (best_v, best_idx)? The same order as drop_pool's max.
template <typename acc_t>
BDB_INLINE bool positive_better(acc_t v, int64_t idx, acc_t best_v, int64_t best_idx) {
  return max_candidate_better(v, idx, best_v, best_idx);
}

// Is (v, idx) a better hardest negative than (best_v, best_idx)? The mirror order: the smallest wins.
template <typename acc_t>
BDB_INLINE bool negative_better(acc_t v, int64_t idx, acc_t best_v, int64_t best_idx) {
  return extreme_candidate_better<false>(v, idx, best_v, best_idx);
}

// Running winners of one anchor (squared distances).
template <typename acc_t>
struct MiningBest {
  acc_t pos_value;
  int64_t pos_index;  // -1: no positive seen
  acc_t neg_value;
  int64_t neg_index;  // -1: no negative seen

  BDB_INLINE void reset() {
    pos_value = acc_t(0);
    pos_index = -1;
    neg_value = acc_t(0);
    neg_index = -1;
  }

  // Candidate j of anchor i (j != i for positives is the caller's business: self is skipped).
  BDB_INLINE void offer(acc_t s, int64_t j, bool same_label) {
    if (same_label) {
      if (positive_better(s, j, pos_value, pos_index)) {
        pos_value = s;
        pos_index = j;
      }
    } else if (negative_better(s, j, neg_value, neg_index)) {
      neg_value = s;
      neg_index = j;
    }
  }

  BDB_INLINE void merge(const MiningBest& o) {
    offer_positive(o.pos_value, o.pos_index);
    offer_negative(o.neg_value, o.neg_index);
  }

  BDB_INLINE void offer_positive(acc_t s, int64_t j) {
    if (positive_better(s, j, pos_value, pos_index)) {
      pos_value = s;
      pos_index = j;
    }
  }

  BDB_INLINE void offer_negative(acc_t s, int64_t j) {
    if (negative_better(s, j, neg_value, neg_index)) {
      neg_value = s;
      neg_index = j;
    }
  }
};

// Whether a winner was found (index >= 0) for an anchor.
BDB_INLINE bool has_pair(int64_t idx) { return idx >= 0; }

// One output of an anchor: the distance (the square root of the winner's squared distance) and the
// index. The one home of the rule for an anchor without a pair, used by every backend:
//   no positive: d_ap = 0, idx_p = the anchor itself;  no negative: d_an = +inf, idx_n = -1.
template <typename acc_t>
struct MinedPair {
  acc_t distance;
  int64_t index;
};

template <typename acc_t>
BDB_HOST_DEVICE inline MinedPair<acc_t> mined_positive(int64_t anchor, int64_t index, acc_t squared) {
  if (!has_pair(index)) return {acc_t(0), anchor};
  return {std::sqrt(squared), index};
}

template <typename acc_t>
BDB_HOST_DEVICE inline MinedPair<acc_t> mined_negative(int64_t index, acc_t squared) {
  if (!has_pair(index)) return {std::numeric_limits<acc_t>::infinity(), int64_t(-1)};
  return {std::sqrt(squared), index};
}

// d(sqrt(s))/d(a) = (a - b) / d: the weight g / d of the difference vector, 0 where d = 0 (the
// subgradient torch.cdist uses) or where the pair does not exist, so repeated embeddings never
// give NaN or inf gradients.
template <typename acc_t>
BDB_INLINE acc_t distance_grad_weight(acc_t grad, acc_t d, bool pair_exists) {
  if (!pair_exists || !(d > acc_t(0)) || grad == acc_t(0)) return acc_t(0);
  return grad / d;
}

// sum((a - b)^2) over D elements in a fixed order with 16 independent partial sums: the direct form
// the outputs are computed in (no |a|^2 + |b|^2 - 2ab cancellation), with an error bound of about
// (D / 16 + 4) ulps instead of D ulps for one running sum. Used by the CPU kernels.
template <typename scalar_t, typename acc_t>
BDB_INLINE acc_t squared_distance_direct(const scalar_t* a, const scalar_t* b, int64_t D) {
  constexpr int kParts = 16;
  acc_t part[kParts];
  for (int k = 0; k < kParts; ++k) part[k] = acc_t(0);
  int64_t d = 0;
  for (; d + kParts <= D; d += kParts) {
    for (int k = 0; k < kParts; ++k) {
      const acc_t diff = static_cast<acc_t>(a[d + k]) - static_cast<acc_t>(b[d + k]);
      part[k] += diff * diff;
    }
  }
  for (int k = 0; d < D; ++d, ++k) {
    const acc_t diff = static_cast<acc_t>(a[d]) - static_cast<acc_t>(b[d]);
    part[k] += diff * diff;
  }
  for (int width = kParts / 2; width > 0; width /= 2) {
    for (int k = 0; k < width; ++k) part[k] += part[k + width];
  }
  return part[0];
}

// A bound on |s_gemm - s| for s_gemm = |a|^2 + |b|^2 - 2 a.b computed in a precision with unit
// roundoff `u` (any summation order, FMA or not): each of the three reductions errs by at most
// gamma_D times its sum of |terms|, and |a.b| <= (|a|^2 + |b|^2) / 2; the last three operations add a
// few u more. `tiny` covers products that underflow. Used to decide which candidates of a GEMM
// tile must be re-measured in the direct form before a winner is chosen.
template <typename acc_t>
BDB_INLINE acc_t gemm_form_error_bound(acc_t norm_a, acc_t norm_b, int64_t D, acc_t u, acc_t tiny) {
  const acc_t k = static_cast<acc_t>(2 * D + 16) * u;
  return k * (norm_a + norm_b) + static_cast<acc_t>(4 * D + 16) * tiny;
}

}  // namespace bdb
