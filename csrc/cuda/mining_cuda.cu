// Host side of the CUDA metric-learning ops: checks, launch shapes, launches on the current stream.
// The kernels are in mining_kernels.cuh (direct form), mining_gemm_kernels.cuh (GEMM form, N >= 2048)
// and mining_backward_kernels.cuh. Nothing here syncs with the device or allocates N x N: the
// forward's workspaces are O(N * N / 128) records, O(32 N) partial winners or the split-K partials
// of a small N (bounded by a constant, mining_launch.cuh); the backward's an O(N) CSR and the hub
// chunks' O(4 N / C * D) partial rows.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <limits>

#include "runtime.h"

#include "../host/mining_args.h"
#include "../host/pairwise_backward.h"
#include "mining_backward_kernels.cuh"
#include "mining_gemm_kernels.cuh"
#include "mining_kernels.cuh"

namespace bdb {
namespace {

bool aligned16(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.const_data_ptr()) % 16 == 0; }

// The 16-byte vector width for rows of D elements of the embeddings (1: scalar loads), passed to
// `body` as a compile-time constant.
template <typename scalar_t, typename Body>
void with_vector_width(bool aligned, int64_t D, Body&& body) {
  constexpr int kWide = 16 / sizeof(scalar_t);
  if (mining_vector_width(D, sizeof(scalar_t), aligned) == kWide) {
    body(std::integral_constant<int, kWide>{});
  } else {
    body(std::integral_constant<int, 1>{});
  }
}

at::Tensor pairwise_distance_kernel_device(const at::Tensor& x_in, const at::Tensor& y_in, bool squared) {
  const char* op = "bdb_ext::pairwise_distance";
  check_pairwise_args(x_in, y_in, op);
  KernelDeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const at::Tensor y = y_in.contiguous();
  const int64_t N = x.size(0), M = y.size(0), D = x.size(1);
  at::Tensor out = at::empty({N, M}, x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bdb_ext::pairwise_distance", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    // Too few 32 x 32 tiles to fill the GPU (N = M = 128: 16): split D across blocks, as batch_hard_mine does.
    const MiningSplitKShape splitk = mining_splitk_launch(N, M, D);
    if (splitk.ksplits > 1) {
      at::Tensor partial = at::empty({splitk.ksplits, N, M}, x.options().dtype(acc_type_of(x.scalar_type())));
      with_vector_width<scalar_t>(aligned16(x) && aligned16(y), D, [&](auto vec) {
        auto kernel = mining_splitk_kernel<scalar_t, decltype(vec)::value>;
        const dim3 grid(static_cast<unsigned>(splitk.tile_pairs), static_cast<unsigned>(splitk.ksplits));
        BDB_LAUNCH_KERNEL(kernel, grid, dim3(splitk.threads), current_kernel_stream(), x.const_data_ptr<scalar_t>(), N,
                          y.const_data_ptr<scalar_t>(), M, D, splitk.ksplits, splitk.chunks_per_split,
                          partial.mutable_data_ptr<acc_t>());
        BDB_KERNEL_LAUNCH_CHECK();
      });
      const LaunchShape fin = elementwise_launch(N * M, 1);
      auto finalize = pairwise_splitk_finalize_kernel<scalar_t>;
      BDB_LAUNCH_KERNEL(finalize, dim3(static_cast<unsigned>(fin.blocks)), dim3(fin.threads), current_kernel_stream(),
                        partial.const_data_ptr<acc_t>(), N * M, splitk.ksplits, squared,
                        out.mutable_data_ptr<scalar_t>());
      BDB_KERNEL_LAUNCH_CHECK();
      return;
    }
    const PairwiseShape shape = pairwise_launch(N, M);
    with_vector_width<scalar_t>(aligned16(x) && aligned16(y), D, [&](auto vec) {
      auto kernel = pairwise_distance_kernel<scalar_t, decltype(vec)::value>;
      const dim3 grid(static_cast<unsigned>(shape.blocks_x), static_cast<unsigned>(shape.blocks_y));
      BDB_LAUNCH_KERNEL(kernel, grid, dim3(shape.threads), current_kernel_stream(), x.const_data_ptr<scalar_t>(),
                        y.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), N, M, D, squared);
      BDB_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> pairwise_distance_backward_kernel_device(const at::Tensor& grad,
                                                                            const at::Tensor& x,
                                                                            const at::Tensor& y,
                                                                            const at::Tensor& dist, bool squared) {
  KernelDeviceGuard guard(x.device());
  return pairwise_distance_backward_aten(grad, x, y, dist, squared, "bdb_ext::_pairwise_distance_backward");
}

// The three forward paths (mining_kernels.cuh, mining_gemm_kernels.cuh); all end in a finalize kernel
// that writes every output.
template <typename scalar_t>
void mine_direct(const at::Tensor& x, const at::Tensor& labels, at::Tensor& d_ap, at::Tensor& d_an,
                 at::Tensor& idx_p, at::Tensor& idx_n) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = x.size(0), D = x.size(1);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const int64_t* lp = labels.const_data_ptr<int64_t>();
  const auto acc_options = x.options().dtype(acc_type_of(x.scalar_type()));
  const LaunchShape fin = mining_finalize_launch(N);
  const MiningSplitKShape splitk = mining_splitk_launch(N, D);
  if (splitk.ksplits > 1) {
    at::Tensor partial = at::empty({splitk.ksplits, N, N}, acc_options);
    with_vector_width<scalar_t>(aligned16(x), D, [&](auto vec) {
      auto kernel = mining_splitk_kernel<scalar_t, decltype(vec)::value>;
      const dim3 grid(static_cast<unsigned>(splitk.tile_pairs), static_cast<unsigned>(splitk.ksplits));
      BDB_LAUNCH_KERNEL(kernel, grid, dim3(splitk.threads), current_kernel_stream(), xp, N, xp, N, D, splitk.ksplits,
                        splitk.chunks_per_split, partial.mutable_data_ptr<acc_t>());
      BDB_KERNEL_LAUNCH_CHECK();
    });
    auto finalize = mining_splitk_finalize_kernel<scalar_t>;
    BDB_LAUNCH_KERNEL(finalize, dim3(static_cast<unsigned>(fin.blocks)), dim3(fin.threads), current_kernel_stream(),
                      xp, lp, N, D, splitk.ksplits, partial.const_data_ptr<acc_t>(),
                      d_ap.mutable_data_ptr<scalar_t>(), d_an.mutable_data_ptr<scalar_t>(),
                      idx_p.mutable_data_ptr<int64_t>(), idx_n.mutable_data_ptr<int64_t>());
    BDB_KERNEL_LAUNCH_CHECK();
    return;
  }
  const MiningSelectShape select = mining_select_launch(N);
  at::Tensor part_pos_value = at::empty({select.splits, N}, acc_options);
  at::Tensor part_neg_value = at::empty({select.splits, N}, acc_options);
  at::Tensor part_pos_index = at::empty({select.splits, N}, x.options().dtype(at::kLong));
  at::Tensor part_neg_index = at::empty({select.splits, N}, x.options().dtype(at::kLong));
  acc_t* ppv = part_pos_value.mutable_data_ptr<acc_t>();
  acc_t* pnv = part_neg_value.mutable_data_ptr<acc_t>();
  int64_t* ppi = part_pos_index.mutable_data_ptr<int64_t>();
  int64_t* pni = part_neg_index.mutable_data_ptr<int64_t>();
  with_vector_width<scalar_t>(aligned16(x), D, [&](auto vec) {
    auto kernel = mining_select_kernel<scalar_t, decltype(vec)::value>;
    const dim3 grid(static_cast<unsigned>(select.anchor_blocks), static_cast<unsigned>(select.splits));
    BDB_LAUNCH_KERNEL(kernel, grid, dim3(select.threads), current_kernel_stream(), xp, lp, N, D, select.splits,
                      select.tiles_per_split, ppv, ppi, pnv, pni);
    BDB_KERNEL_LAUNCH_CHECK();
  });
  auto finalize = mining_finalize_kernel<scalar_t>;
  BDB_LAUNCH_KERNEL(finalize, dim3(static_cast<unsigned>(fin.blocks)), dim3(fin.threads), current_kernel_stream(), xp,
                    N, D, select.splits, ppv, ppi, pnv, pni, d_ap.mutable_data_ptr<scalar_t>(),
                    d_an.mutable_data_ptr<scalar_t>(), idx_p.mutable_data_ptr<int64_t>(),
                    idx_n.mutable_data_ptr<int64_t>());
  BDB_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void mine_gemm(const at::Tensor& x, const at::Tensor& labels, at::Tensor& d_ap, at::Tensor& d_an, at::Tensor& idx_p,
               at::Tensor& idx_n) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = x.size(0), D = x.size(1);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const int64_t* lp = labels.const_data_ptr<int64_t>();
  at::Tensor norms = at::empty({N}, x.options().dtype(acc_type_of(x.scalar_type())));
  const LaunchShape norm_shape = mining_norms_launch(N);
  auto norms_kernel = mining_norms_kernel<scalar_t>;
  BDB_LAUNCH_KERNEL(norms_kernel, dim3(static_cast<unsigned>(norm_shape.blocks)), dim3(norm_shape.threads),
                    current_kernel_stream(), xp, N, D, norms.mutable_data_ptr<acc_t>());
  BDB_KERNEL_LAUNCH_CHECK();
  const MiningGemmShape gemm = mining_gemm_launch(N);
  using Record = MiningGemmRecord<acc_t>;
  at::Tensor records = at::empty({static_cast<int64_t>(gemm.tiles * N * sizeof(Record))}, x.options().dtype(at::kByte));
  Record* rp = reinterpret_cast<Record*>(records.mutable_data_ptr());
  // fp32 FMA: unit roundoff 2^-24 whatever the user's TF32 setting (these are not cuBLAS calls).
  const acc_t u = std::numeric_limits<acc_t>::epsilon() / 2;
  const acc_t tiny = std::numeric_limits<acc_t>::min();
  with_vector_width<scalar_t>(aligned16(x), D, [&](auto vec) {
    auto kernel = mining_gemm_bounds_kernel<scalar_t, decltype(vec)::value>;
    const dim3 grid(static_cast<unsigned>(gemm.blocks_x), static_cast<unsigned>(gemm.blocks_y));
    BDB_LAUNCH_KERNEL(kernel, grid, dim3(gemm.threads), current_kernel_stream(), xp, lp,
                      norms.const_data_ptr<acc_t>(), N, D, u, tiny, rp);
    BDB_KERNEL_LAUNCH_CHECK();
  });
  const LaunchShape fin = mining_finalize_launch(N);
  auto finalize = mining_gemm_finalize_kernel<scalar_t>;
  BDB_LAUNCH_KERNEL(finalize, dim3(static_cast<unsigned>(fin.blocks)), dim3(fin.threads), current_kernel_stream(), xp,
                    lp, N, D, static_cast<const Record*>(rp), d_ap.mutable_data_ptr<scalar_t>(),
                    d_an.mutable_data_ptr<scalar_t>(), idx_p.mutable_data_ptr<int64_t>(),
                    idx_n.mutable_data_ptr<int64_t>());
  BDB_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_hard_mine_kernel_device(
    const at::Tensor& x_in, const at::Tensor& labels_in) {
  const char* op = "bdb_ext::batch_hard_mine";
  check_mine_args(x_in, labels_in, op);
  KernelDeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const at::Tensor labels = labels_in.contiguous();
  const int64_t N = x.size(0);
  at::Tensor d_ap = at::empty({N}, x.options());
  at::Tensor d_an = at::empty({N}, x.options());
  at::Tensor idx_p = at::empty({N}, x.options().dtype(at::kLong));
  at::Tensor idx_n = at::empty({N}, x.options().dtype(at::kLong));
  if (N == 0) return {d_ap, d_an, idx_p, idx_n};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bdb_ext::batch_hard_mine", [&] {
    // float64 keeps the direct form at every N: its 128 x 128 GEMM tile would not fit the registers or
    // the 48 KB of static shared memory, so it is not even instantiated.
    if constexpr (std::is_same_v<scalar_t, double>) {
      mine_direct<scalar_t>(x, labels, d_ap, d_an, idx_p, idx_n);
    } else if (N >= kMiningGemmMinN) {
      mine_gemm<scalar_t>(x, labels, d_ap, d_an, idx_p, idx_n);
    } else {
      mine_direct<scalar_t>(x, labels, d_ap, d_an, idx_p, idx_n);
    }
  });
  return {d_ap, d_an, idx_p, idx_n};
}

at::Tensor batch_hard_mine_backward_kernel_device(const at::Tensor& grad_ap_in, const at::Tensor& grad_an_in,
                                                  const at::Tensor& x_in, const at::Tensor& idx_p_in,
                                                  const at::Tensor& idx_n_in, const at::Tensor& d_ap_in,
                                                  const at::Tensor& d_an_in) {
  const char* op = "bdb_ext::_batch_hard_mine_backward";
  KernelDeviceGuard guard(x_in.device());
  const MineGradInput in = prepare_mine_backward(grad_ap_in, grad_an_in, x_in, idx_p_in, idx_n_in, d_ap_in, d_an_in,
                                                 op, IndexCheck::kInKernel);
  const at::Tensor &x = in.x, &idx_p = in.idx_p, &idx_n = in.idx_n;
  const at::Tensor &grad_ap = in.grad_ap, &grad_an = in.grad_an, &d_ap = in.d_ap, &d_an = in.d_an;
  const int64_t N = x.size(0), D = x.size(1);
  // The pair grouping indexes the 2N pairs in int32.
  TORCH_CHECK(2 * N < std::numeric_limits<int32_t>::max(), op, ": at most 2^30 - 1 embeddings, got N = ", N);
  at::Tensor dx = at::empty({N, D}, x.options());
  if (dx.numel() == 0) return dx;
  const MiningBackwardShape shape = mining_backward_launch(N, D);
  // One int32 workspace: fill (N), offsets (N + 1), chunk_offsets (N + 1), order (2N), rank (2N).
  at::Tensor csr = at::empty({7 * N + 2}, x.options().dtype(at::kInt));
  int32_t* fill = csr.mutable_data_ptr<int32_t>();
  int32_t* offsets = fill + N;
  int32_t* chunk_offsets = offsets + N + 1;
  int32_t* order = chunk_offsets + N + 1;
  int32_t* rank = order + 2 * N;
  const int64_t* ip64 = idx_p.const_data_ptr<int64_t>();
  const int64_t* in64 = idx_n.const_data_ptr<int64_t>();
  const bool order_in_block = mining_group_ranks_in_block(N);
  auto group = mining_group_pairs_kernel<int32_t>;
  BDB_LAUNCH_KERNEL(group, dim3(1), dim3(kMiningGroupThreads), current_kernel_stream(), ip64, in64, N,
                    shape.pairs_per_chunk, order_in_block, fill, offsets, chunk_offsets, order, rank);
  BDB_KERNEL_LAUNCH_CHECK();
  if (!order_in_block) {
    const MiningRankShape rs = mining_rank_launch(N);
    auto rank_kernel = mining_rank_pairs_kernel<int32_t>;
    BDB_LAUNCH_KERNEL(rank_kernel, dim3(static_cast<unsigned>(rs.blocks_x), static_cast<unsigned>(rs.blocks_y)),
                      dim3(rs.threads), current_kernel_stream(), ip64, in64, N, rank);
    BDB_KERNEL_LAUNCH_CHECK();
    const LaunchShape ss = mining_scatter_launch(N);
    auto scatter = mining_scatter_pairs_kernel<int32_t>;
    BDB_LAUNCH_KERNEL(scatter, dim3(static_cast<unsigned>(ss.blocks)), dim3(ss.threads), current_kernel_stream(), ip64,
                      in64, N, static_cast<const int32_t*>(offsets), static_cast<const int32_t*>(rank), order);
    BDB_KERNEL_LAUNCH_CHECK();
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bdb_ext::_batch_hard_mine_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor partial = at::empty({shape.max_chunks, D}, x.options().dtype(acc_type_of(x.scalar_type())));
    const scalar_t* gap = grad_ap.const_data_ptr<scalar_t>();
    const scalar_t* gan = grad_an.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const int64_t* ip = idx_p.const_data_ptr<int64_t>();
    const int64_t* in = idx_n.const_data_ptr<int64_t>();
    const scalar_t* dap = d_ap.const_data_ptr<scalar_t>();
    const scalar_t* dan = d_an.const_data_ptr<scalar_t>();
    auto chunks = mining_backward_chunks_kernel<scalar_t>;
    const dim3 chunk_grid(static_cast<unsigned>(grid_blocks(shape.max_chunks)), static_cast<unsigned>(shape.d_blocks));
    BDB_LAUNCH_KERNEL(chunks, chunk_grid, dim3(shape.threads), current_kernel_stream(), gap, gan, xp, ip, in, dap, dan,
                      static_cast<const int32_t*>(order), static_cast<const int32_t*>(offsets),
                      static_cast<const int32_t*>(chunk_offsets), N, D, shape.pairs_per_chunk, shape.max_chunks,
                      partial.mutable_data_ptr<acc_t>());
    BDB_KERNEL_LAUNCH_CHECK();
    auto rows = mining_backward_rows_kernel<scalar_t>;
    const dim3 row_grid(static_cast<unsigned>(grid_blocks(N)), static_cast<unsigned>(shape.d_blocks));
    BDB_LAUNCH_KERNEL(rows, row_grid, dim3(shape.threads), current_kernel_stream(), gap, gan, xp, ip, in, dap, dan,
                      static_cast<const int32_t*>(order), static_cast<const int32_t*>(offsets),
                      static_cast<const int32_t*>(chunk_offsets), N, D, shape.pairs_per_chunk,
                      partial.const_data_ptr<acc_t>(), dx.mutable_data_ptr<scalar_t>());
    BDB_KERNEL_LAUNCH_CHECK();
  });
  return dx;
}

}  // namespace
}  // namespace bdb

TORCH_LIBRARY_IMPL(BDB_KERNEL_LIBRARY, BDB_KERNEL_DISPATCH_KEY, m) {
  m.impl("pairwise_distance", &bdb::pairwise_distance_kernel_device);
  m.impl("_pairwise_distance_backward", &bdb::pairwise_distance_backward_kernel_device);
  m.impl("batch_hard_mine", &bdb::batch_hard_mine_kernel_device);
  m.impl("_batch_hard_mine_backward", &bdb::batch_hard_mine_backward_kernel_device);
}
