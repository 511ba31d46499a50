// The kept (not dropped) positions of one NCHW plane as maximal runs of row-major offsets. Shared by
// the drop kernels and the vectorised pooling kernels, so both walk a plane the same way.
#pragma once

#include <cstdint>

#include "../common/drop_rect.h"
#include "../common/map_layout.h"

namespace bdb {

// Calls fn(begin, end) for each maximal run of kept positions of one NCHW plane, in order, as offsets
// into the plane. A full-width rectangle is one dropped run, so a plane is at most three runs when
// the rectangle spans the width and at most height + 1 runs otherwise.
template <typename Fn>
inline void for_each_kept_run(const MapLayout& m, const DropRect& r, Fn&& fn) {
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

// About 32K elements of work per task keeps thread start-up small against the work.
inline int64_t grain_for(int64_t elements_per_item) {
  return elements_per_item >= 32768 ? 1 : 32768 / (elements_per_item > 0 ? elements_per_item : 1);
}

}  // namespace bdb
