// The dropped rectangle as every kernel sees it: read from where the rect tensor lives, then
// clamped to the map, so a device-resident rect never needs a host sync to be made safe.
#pragma once

#include <cstdint>

#include "macros.h"

namespace bdb {

struct DropRect {
  int64_t top;
  int64_t left;
  int64_t height;
  int64_t width;

  BDB_INLINE bool row_dropped(int64_t h) const { return h >= top && h < top + height; }
  BDB_INLINE bool col_dropped(int64_t w) const { return w >= left && w < left + width; }
  BDB_INLINE bool dropped(int64_t h, int64_t w) const { return row_dropped(h) && col_dropped(w); }
  BDB_INLINE bool empty() const { return height == 0 || width == 0; }
};

// How a kernel receives the rectangle: a pointer to the 4 int64 values when the rect tensor is on
// the kernel's device (read inside the kernel, so CUDA graphs and torch.compile see no host sync),
// or the values themselves when the host already has them (a CPU rect).
struct RectArg {
  const int64_t* device_values;  // nullptr when host_values holds the rectangle
  int64_t host_values[4];
};

BDB_INLINE int64_t clamp_to(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// Clamping makes a device-resident rect that is out of range (which the host cannot check
// without a sync) drop the part of it that lies on the map instead of reading out of bounds.
// `arg` is taken by value and host_values is read only at constant indices: a kernel passes its
// RectArg parameter straight in, and forming a pointer into a kernel parameter (as selecting
// between device_values and host_values by pointer would) copies the parameter to a stack frame.
BDB_INLINE DropRect load_rect(RectArg arg, int64_t H, int64_t W) {
  int64_t v[4];
  if (arg.device_values != nullptr) {
    for (int i = 0; i < 4; ++i) v[i] = arg.device_values[i];
  } else {
    for (int i = 0; i < 4; ++i) v[i] = arg.host_values[i];
  }
  DropRect r;
  r.top = clamp_to(v[0], 0, H);
  r.left = clamp_to(v[1], 0, W);
  r.height = clamp_to(v[2], 0, H - r.top);
  r.width = clamp_to(v[3], 0, W - r.left);
  return r;
}

}  // namespace bdb
