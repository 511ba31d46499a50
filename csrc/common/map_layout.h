// Where a flat element index of an N x C x H x W tensor lies, for the two dense layouts the
// kernels support natively (NCHW contiguous and channels_last).
#pragma once

#include <cstdint>

#include "macros.h"

namespace bdb {

struct MapPosition {
  int64_t n, c, h, w;
};

struct MapLayout {
  int64_t N, C, H, W;
  bool channels_last;

  BDB_INLINE int64_t numel() const { return N * C * H * W; }

  BDB_INLINE MapPosition locate(int64_t i) const {
    MapPosition p;
    if (channels_last) {
      unravel(i, C, W, H, p.c, p.w, p.h, p.n);
    } else {
      unravel(i, W, H, C, p.w, p.h, p.c, p.n);
    }
    return p;
  }

 private:
  // The digits of i in the mixed radix (size0 innermost): i = ((x3 * size2 + x2) * size1 + x1) * size0 + x0.
  BDB_INLINE static void unravel(int64_t i, int64_t size0, int64_t size1, int64_t size2, int64_t& x0, int64_t& x1,
                                 int64_t& x2, int64_t& x3) {
    x0 = i % size0;
    int64_t t = i / size0;
    x1 = t % size1;
    t /= size1;
    x2 = t % size2;
    x3 = t / size2;
  }
};

}  // namespace bdb
