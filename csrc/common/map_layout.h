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
      p.c = i % C;
      int64_t t = i / C;
      p.w = t % W;
      t /= W;
      p.h = t % H;
      p.n = t / H;
    } else {
      p.w = i % W;
      int64_t t = i / W;
      p.h = t % H;
      t /= H;
      p.c = t % C;
      p.n = t / C;
    }
    return p;
  }
};

}  // namespace bdb
