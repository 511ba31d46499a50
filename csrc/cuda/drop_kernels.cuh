// Device code of batch_drop_block and drop_pool: kernels over raw pointers, no ATen tensors, so the
// CPU emulation harness and the standalone sanitizer driver can include this header as it is.
#pragma once

#include "device_prelude.h"

#include "../common/drop_rect.h"
#include "../common/map_layout.h"
#include "../common/max_candidate.h"

namespace bdb {

// y = x outside the rectangle, 0 inside; also the backward (same mask on the gradient).
// Vectors of VEC elements never straddle a row (NCHW: W % VEC == 0) or a position (NHWC:
// C % VEC == 0), so one (h, w) lookup serves the whole vector and fully dropped vectors are
// never read.
template <typename scalar_t, int VEC>
__global__ void drop_block_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
                                  MapLayout map, RectArg rect_arg) {
  const DropRect rect = load_rect(rect_arg, map.H, map.W);
  const int64_t vectors = map.numel() / VEC;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < vectors;
       v += stride) {
    const int64_t base = v * VEC;
    const MapPosition p = map.locate(base);
    const int64_t w_step = map.channels_last ? 0 : 1;
    bool keep[VEC];
    bool any_keep = false;
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      keep[j] = !rect.dropped(p.h, p.w + j * w_step);
      any_keep = any_keep || keep[j];
    }
    VecOf<scalar_t, VEC> out;
    if (any_keep) {
      const VecOf<scalar_t, VEC> in = *reinterpret_cast<const VecOf<scalar_t, VEC>*>(x + base);
#pragma unroll
      for (int j = 0; j < VEC; ++j) out.v[j] = keep[j] ? in.v[j] : scalar_t(0);
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) out.v[j] = scalar_t(0);
    }
    *reinterpret_cast<VecOf<scalar_t, VEC>*>(y + base) = out;
  }
}

template <typename acc_t>
struct PoolPartial {
  acc_t value;    // running max, or running sum for "avg"
  int64_t index;  // position in the H*W plane of the max; -1 while none
};

template <typename acc_t, bool IS_MAX>
BDB_INLINE void pool_combine(PoolPartial<acc_t>& a, acc_t v, int64_t idx) {
  if (IS_MAX) {
    if (max_candidate_better(v, idx, a.value, a.index)) {
      a.value = v;
      a.index = idx;
    }
  } else {
    a.value += v;
  }
}

template <typename scalar_t, typename acc_t, bool IS_MAX>
BDB_INLINE void pool_write(PoolPartial<acc_t> p, const DropRect& rect, int64_t hw,
                           scalar_t* out, int64_t* argmax, int64_t o) {
  if (IS_MAX) {
    settle_against_dropped_zero(!rect.empty(), p.value, p.index);
    out[o] = static_cast<scalar_t>(p.value);
    argmax[o] = p.index;
  } else {
    out[o] = static_cast<scalar_t>(p.value / static_cast<acc_t>(hw));
  }
}

// NCHW pooling: `group` lanes (a power of two <= 32) reduce one contiguous H*W plane with
// shuffles. The loop bound is block-uniform so every lane of a warp reaches every shuffle.
template <typename scalar_t, int VEC, bool IS_MAX>
__global__ void drop_pool_planes_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out,
                                        int64_t* __restrict__ argmax, int64_t planes, int64_t H,
                                        int64_t W, int group, RectArg rect_arg) {
  using acc_t = at::opmath_type<scalar_t>;
  const DropRect rect = load_rect(rect_arg, H, W);
  const int64_t hw = H * W;
  const int64_t vectors_per_row = W / VEC;
  const int64_t vectors_per_plane = hw / VEC;
  const int lane = threadIdx.x % group;
  const int64_t planes_per_block = blockDim.x / group;
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * planes_per_block; first < planes;
       first += static_cast<int64_t>(gridDim.x) * planes_per_block) {
    const int64_t plane = first + threadIdx.x / group;
    const bool valid = plane < planes;
    PoolPartial<acc_t> part{acc_t(0), -1};
    if (valid) {
      const scalar_t* src = x + plane * hw;
      for (int64_t vi = lane; vi < vectors_per_plane; vi += group) {
        const int64_t h = vi / vectors_per_row;
        const int64_t w0 = (vi % vectors_per_row) * VEC;
        if (rect.row_dropped(h) && rect.col_dropped(w0) && rect.col_dropped(w0 + VEC - 1)) continue;
        const VecOf<scalar_t, VEC> in = *reinterpret_cast<const VecOf<scalar_t, VEC>*>(src + vi * VEC);
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
          if (rect.dropped(h, w0 + j)) continue;
          pool_combine<acc_t, IS_MAX>(part, static_cast<acc_t>(in.v[j]), h * W + w0 + j);
        }
      }
    }
    for (int offset = group / 2; offset > 0; offset /= 2) {
      const acc_t other_value = __shfl_xor_sync(0xffffffffu, part.value, offset, group);
      const int64_t other_index = __shfl_xor_sync(0xffffffffu, part.index, offset, group);
      pool_combine<acc_t, IS_MAX>(part, other_value, other_index);
    }
    if (valid && lane == 0) pool_write<scalar_t, acc_t, IS_MAX>(part, rect, hw, out, argmax, plane);
  }
}

// channels_last pooling: each thread owns VEC consecutive channels of one sample and walks the
// kept positions; neighbouring threads read neighbouring channels, so loads coalesce.
template <typename scalar_t, int VEC, bool IS_MAX>
__global__ void drop_pool_channels_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out,
                                          int64_t* __restrict__ argmax, int64_t N, int64_t C,
                                          int64_t H, int64_t W, RectArg rect_arg) {
  using acc_t = at::opmath_type<scalar_t>;
  const DropRect rect = load_rect(rect_arg, H, W);
  const int64_t channel_vectors = C / VEC;
  const int64_t cv = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (cv >= channel_vectors) return;
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    PoolPartial<acc_t> part[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) part[j] = PoolPartial<acc_t>{acc_t(0), -1};
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t w = 0; w < W; ++w) {
        if (rect.dropped(h, w)) continue;
        const int64_t offset = ((n * H + h) * W + w) * C + cv * VEC;
        const VecOf<scalar_t, VEC> in = *reinterpret_cast<const VecOf<scalar_t, VEC>*>(x + offset);
#pragma unroll
        for (int j = 0; j < VEC; ++j) pool_combine<acc_t, IS_MAX>(part[j], static_cast<acc_t>(in.v[j]), h * W + w);
      }
    }
#pragma unroll
    for (int j = 0; j < VEC; ++j) pool_write<scalar_t, acc_t, IS_MAX>(part[j], rect, H * W, out, argmax, n * C + cv * VEC + j);
  }
}

// Dense gradient of drop_pool in one pass: every element of dx is written exactly once, with the
// pooled gradient where it belongs and 0 elsewhere (no memset followed by a scatter).
template <typename scalar_t, int VEC, bool IS_MAX>
__global__ void drop_pool_backward_kernel(const scalar_t* __restrict__ grad_out,
                                          const int64_t* __restrict__ argmax,
                                          scalar_t* __restrict__ dx, MapLayout map,
                                          RectArg rect_arg) {
  using acc_t = at::opmath_type<scalar_t>;
  const DropRect rect = load_rect(rect_arg, map.H, map.W);
  const int64_t hw = map.H * map.W;
  const int64_t vectors = map.numel() / VEC;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < vectors;
       v += stride) {
    const int64_t base = v * VEC;
    const MapPosition p = map.locate(base);
    VecOf<scalar_t, VEC> res;
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      // NCHW vectors run along w within one plane; NHWC vectors run along c at one position.
      const int64_t w = map.channels_last ? p.w : p.w + j;
      const int64_t plane = p.n * map.C + (map.channels_last ? p.c + j : p.c);
      const int64_t pos = p.h * map.W + w;
      if (IS_MAX) {
        res.v[j] = argmax[plane] == pos ? grad_out[plane] : scalar_t(0);
      } else {
        res.v[j] = rect.dropped(p.h, w)
                       ? scalar_t(0)
                       : static_cast<scalar_t>(static_cast<acc_t>(grad_out[plane]) / static_cast<acc_t>(hw));
      }
    }
    *reinterpret_cast<VecOf<scalar_t, VEC>*>(dx + base) = res;
  }
}

}  // namespace bdb
