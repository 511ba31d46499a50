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
__global__ __launch_bounds__(kElementwiseThreads, kDropBlocksPerSm) void drop_block_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
                                  MapLayout map, RectArg rect_arg) {
  const DropRect rect = load_rect(rect_arg, map.H, map.W);
  const int64_t vectors = map.numel() / VEC;
  for (int64_t v = grid_stride_first(); v < vectors; v += grid_stride_step()) {
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

// Strides of an N x C x H x W tensor in elements (any of them may be 0: an expanded tensor).
struct MapStrides {
  int64_t n, c, h, w;
};

// batch_drop_block of a tensor that is neither NCHW-contiguous nor channels_last (an expanded
// upstream gradient, a permuted view): x is read through its strides and y written NCHW-contiguous,
// VEC consecutive w at a time (W % VEC == 0), so x is never copied to a dense tensor first.
// Dropped elements are not read.
template <typename scalar_t, int VEC>
__global__ __launch_bounds__(kElementwiseThreads, kDropBlocksPerSm) void drop_block_strided_kernel(
    const scalar_t* __restrict__ x, MapStrides xs, scalar_t* __restrict__ y, MapLayout map, RectArg rect_arg) {
  const DropRect rect = load_rect(rect_arg, map.H, map.W);
  const int64_t vectors = map.numel() / VEC;
  for (int64_t v = grid_stride_first(); v < vectors; v += grid_stride_step()) {
    const int64_t base = v * VEC;
    const MapPosition p = map.locate(base);  // map.channels_last is false: y is NCHW
    const scalar_t* src = x + p.n * xs.n + p.c * xs.c + p.h * xs.h + p.w * xs.w;
    VecOf<scalar_t, VEC> out;
#pragma unroll
    for (int j = 0; j < VEC; ++j) out.v[j] = rect.dropped(p.h, p.w + j) ? scalar_t(0) : src[j * xs.w];
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
    if (argmax != nullptr) argmax[o] = p.index;  // nullptr: the caller wants the values only
  } else {
    out[o] = static_cast<scalar_t>(p.value / static_cast<acc_t>(hw));
  }
}

// NCHW pooling: `group` lanes (a power of two <= 32) reduce one contiguous H*W plane with
// shuffles. The loop bound is block-uniform so every lane of a warp reaches every shuffle.
template <typename scalar_t, int VEC, bool IS_MAX>
__global__ __launch_bounds__(kPlanePoolThreads, kDropBlocksPerSm) void drop_pool_planes_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out,
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

// channels_last pooling. A block is blockDim.x channel vectors (VEC channels each, so a warp reads
// one contiguous run of a position's channels) x blockDim.y position slices of one sample: slice s
// walks the positions s, s + blockDim.y, ... in increasing order, so the H x W walk of a sample is
// spread over the block instead of one thread and the grid has (channel tiles x N) blocks. The slices
// meet in shared memory and are merged in slice order 0, 1, ... by the thread that writes each output:
// a fixed order, so "avg" sums are bitwise reproducible, and "max" keeps the single winner that
// max_candidate_better's total order defines (the first kept position among equal maxima, NaN first),
// whatever the split. Block-uniform loop bounds: every thread reaches both barriers.
template <typename scalar_t, int VEC, bool IS_MAX>
__global__ __launch_bounds__(kChannelPoolThreads, kDropBlocksPerSm) void drop_pool_channels_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out,
                                          int64_t* __restrict__ argmax, int64_t N, int64_t C,
                                          int64_t H, int64_t W, RectArg rect_arg) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int kItems = kChannelPoolThreads * VEC;  // (slice, channel) partials of one block
  __shared__ acc_t part_value[kItems];
  __shared__ int64_t part_index[IS_MAX ? kItems : 1];
  const DropRect rect = load_rect(rect_arg, H, W);
  const int64_t hw = H * W;
  const int64_t channel_vectors = C / VEC;
  const int64_t cv = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int slice = threadIdx.y;
  const int slices = blockDim.y;
  const int tile_channels = blockDim.x * VEC;  // the block's channels: [blockIdx.x * tile_channels, ...)
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * tile_channels;
  const int tile_valid = static_cast<int>(C - c0 < tile_channels ? C - c0 : tile_channels);
  const int linear = slice * blockDim.x + threadIdx.x;
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    PoolPartial<acc_t> part[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) part[j] = PoolPartial<acc_t>{acc_t(0), -1};
    if (cv < channel_vectors) {
      const scalar_t* src = x + n * hw * C + cv * VEC;
      for (int64_t pos = slice; pos < hw; pos += slices) {
        const int64_t h = pos / W;
        const int64_t w = pos - h * W;
        if (rect.dropped(h, w)) continue;
        const VecOf<scalar_t, VEC> in = *reinterpret_cast<const VecOf<scalar_t, VEC>*>(src + pos * C);
#pragma unroll
        for (int j = 0; j < VEC; ++j) pool_combine<acc_t, IS_MAX>(part[j], static_cast<acc_t>(in.v[j]), pos);
      }
    }
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const int item = slice * tile_channels + threadIdx.x * VEC + j;
      part_value[item] = part[j].value;
      if (IS_MAX) part_index[item] = part[j].index;
    }
    __syncthreads();
    // Output channel c0 + k by thread k (consecutive threads write consecutive channels).
    for (int k = linear; k < tile_valid; k += slices * blockDim.x) {
      PoolPartial<acc_t> merged{part_value[k], IS_MAX ? part_index[k] : int64_t(-1)};
      for (int s = 1; s < slices; ++s) {
        const int item = s * tile_channels + k;
        if (IS_MAX) {
          pool_combine<acc_t, true>(merged, part_value[item], part_index[item]);
        } else {
          merged.value += part_value[item];
        }
      }
      pool_write<scalar_t, acc_t, IS_MAX>(merged, rect, hw, out, argmax, n * C + c0 + k);
    }
    __syncthreads();  // the partials are rewritten for the next sample
  }
}

// Dense gradient of drop_pool in one pass: every element of dx is written exactly once, with the
// pooled gradient where it belongs and 0 elsewhere (no memset followed by a scatter). grad_out is
// read through its strides, so an expanded (stride-0) upstream gradient is never materialised.
// argmax comes from an op input: an index outside [-1, H*W) stops the kernel with a device-side
// assert instead of silently dropping that plane's gradient.
template <typename scalar_t, int VEC, bool IS_MAX>
__global__ void drop_pool_backward_kernel(const scalar_t* __restrict__ grad_out, int64_t grad_stride_n,
                                          int64_t grad_stride_c, const int64_t* __restrict__ argmax,
                                          scalar_t* __restrict__ dx, MapLayout map, RectArg rect_arg) {
  using acc_t = at::opmath_type<scalar_t>;
  const DropRect rect = load_rect(rect_arg, map.H, map.W);
  const int64_t hw = map.H * map.W;
  const int64_t vectors = map.numel() / VEC;
  for (int64_t v = grid_stride_first(); v < vectors; v += grid_stride_step()) {
    const int64_t base = v * VEC;
    const MapPosition p = map.locate(base);
    VecOf<scalar_t, VEC> res;
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      // NCHW vectors run along w within one plane; NHWC vectors run along c at one position.
      const int64_t w = map.channels_last ? p.w : p.w + j;
      const int64_t c = map.channels_last ? p.c + j : p.c;
      const scalar_t g = grad_out[p.n * grad_stride_n + c * grad_stride_c];
      if (IS_MAX) {
        const int64_t winner = argmax[p.n * map.C + c];
        BDB_DEVICE_ASSERT(winner >= -1 && winner < hw,
                          "bdb_ext::_drop_pool_backward: argmax holds an index outside [-1, H*W)");
        res.v[j] = winner == p.h * map.W + w ? g : scalar_t(0);
      } else {
        res.v[j] = rect.dropped(p.h, w) ? scalar_t(0)
                                        : static_cast<scalar_t>(static_cast<acc_t>(g) / static_cast<acc_t>(hw));
      }
    }
    *reinterpret_cast<VecOf<scalar_t, VEC>*>(dx + base) = res;
  }
}

}  // namespace bdb
