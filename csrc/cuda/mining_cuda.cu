// Host side of the CUDA metric-learning ops: checks, launch shapes, launches on the current stream.
// The kernels themselves are in mining_kernels.cuh. batch_hard_mine allocates O(splits * N) partial
// winners (splits <= kMiningMaxSplits) and its backward an O(N) CSR: never an N x N tensor.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "runtime.h"

#include "../host/mining_args.h"
#include "../host/pairwise_backward.h"
#include "mining_kernels.cuh"

namespace bdb {
namespace {

at::ScalarType acc_type_of(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

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
    const PairwiseShape shape = pairwise_launch(N, M);
    auto kernel = pairwise_distance_kernel<scalar_t>;
    const dim3 grid(static_cast<unsigned>(shape.blocks_x), static_cast<unsigned>(shape.blocks_y));
    BDB_LAUNCH_KERNEL(kernel, grid, dim3(shape.threads), current_kernel_stream(), x.const_data_ptr<scalar_t>(),
                      y.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), N, M, D, squared);
    BDB_KERNEL_LAUNCH_CHECK();
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

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_hard_mine_kernel_device(
    const at::Tensor& x_in, const at::Tensor& labels_in) {
  const char* op = "bdb_ext::batch_hard_mine";
  check_mine_args(x_in, labels_in, op);
  KernelDeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const at::Tensor labels = labels_in.contiguous();
  const int64_t N = x.size(0), D = x.size(1);
  at::Tensor d_ap = at::empty({N}, x.options());
  at::Tensor d_an = at::empty({N}, x.options());
  at::Tensor idx_p = at::empty({N}, x.options().dtype(at::kLong));
  at::Tensor idx_n = at::empty({N}, x.options().dtype(at::kLong));
  if (N == 0) return {d_ap, d_an, idx_p, idx_n};
  const MiningSelectShape select = mining_select_launch(N);
  const auto acc_options = x.options().dtype(acc_type_of(x.scalar_type()));
  at::Tensor part_pos_value = at::empty({select.splits, N}, acc_options);
  at::Tensor part_neg_value = at::empty({select.splits, N}, acc_options);
  at::Tensor part_pos_index = at::empty({select.splits, N}, x.options().dtype(at::kLong));
  at::Tensor part_neg_index = at::empty({select.splits, N}, x.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bdb_ext::batch_hard_mine", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    acc_t* ppv = part_pos_value.mutable_data_ptr<acc_t>();
    acc_t* pnv = part_neg_value.mutable_data_ptr<acc_t>();
    int64_t* ppi = part_pos_index.mutable_data_ptr<int64_t>();
    int64_t* pni = part_neg_index.mutable_data_ptr<int64_t>();
    auto select_kernel = mining_select_kernel<scalar_t>;
    const dim3 select_grid(static_cast<unsigned>(select.anchor_blocks), static_cast<unsigned>(select.splits));
    BDB_LAUNCH_KERNEL(select_kernel, select_grid, dim3(select.threads), current_kernel_stream(), xp,
                      labels.const_data_ptr<int64_t>(), N, D, select.splits, select.tiles_per_split, ppv, ppi, pnv,
                      pni);
    BDB_KERNEL_LAUNCH_CHECK();
    const LaunchShape fin = mining_finalize_launch(N);
    auto finalize_kernel = mining_finalize_kernel<scalar_t>;
    BDB_LAUNCH_KERNEL(finalize_kernel, dim3(static_cast<unsigned>(fin.blocks)), dim3(fin.threads),
                      current_kernel_stream(), xp, N, D, select.splits, ppv, ppi, pnv, pni,
                      d_ap.mutable_data_ptr<scalar_t>(), d_an.mutable_data_ptr<scalar_t>(),
                      idx_p.mutable_data_ptr<int64_t>(), idx_n.mutable_data_ptr<int64_t>());
    BDB_KERNEL_LAUNCH_CHECK();
  });
  return {d_ap, d_an, idx_p, idx_n};
}

// The chosen pairs grouped by target row for the gather: pair s (s < N: anchor s's positive,
// s >= N: anchor s - N's negative) goes to row idx_p[s] / idx_n[s - N]; missing pairs go to the
// sentinel row N. A stable sort keeps each row's pairs in increasing s (deterministic order), and
// offsets[j] .. offsets[j + 1] delimit row j's. All O(N), on the kernels' device, no host sync.
std::pair<at::Tensor, at::Tensor> chosen_pairs_by_row(const at::Tensor& idx_p, const at::Tensor& idx_n, int64_t N) {
  const at::Tensor rows = at::arange(N, idx_p.options());
  const at::Tensor sentinel = at::full({}, N, idx_p.options());
  const at::Tensor key_p = at::where(idx_p.eq(rows).logical_or(idx_p.lt(0)), sentinel, idx_p);
  const at::Tensor key_n = at::where(idx_n.lt(0), sentinel, idx_n);
  const at::Tensor keys = at::cat({key_p, key_n});
  const at::Tensor order = at::argsort(keys, /*stable=*/true);
  const at::Tensor sorted_keys = keys.index_select(0, order);
  const at::Tensor offsets = at::searchsorted(sorted_keys, at::arange(N + 1, idx_p.options()));
  return {order.contiguous(), offsets.contiguous()};
}

at::Tensor batch_hard_mine_backward_kernel_device(const at::Tensor& grad_ap_in, const at::Tensor& grad_an_in,
                                                  const at::Tensor& x_in, const at::Tensor& idx_p_in,
                                                  const at::Tensor& idx_n_in, const at::Tensor& d_ap_in,
                                                  const at::Tensor& d_an_in) {
  const char* op = "bdb_ext::_batch_hard_mine_backward";
  check_mine_backward_args(grad_ap_in, grad_an_in, x_in, idx_p_in, idx_n_in, d_ap_in, d_an_in, op);
  KernelDeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const int64_t N = x.size(0), D = x.size(1);
  at::Tensor dx = at::empty({N, D}, x.options());
  if (dx.numel() == 0) return dx;
  const at::Tensor idx_p = idx_p_in.contiguous(), idx_n = idx_n_in.contiguous();
  const at::Tensor grad_ap = grad_ap_in.contiguous(), grad_an = grad_an_in.contiguous();
  const at::Tensor d_ap = d_ap_in.contiguous(), d_an = d_an_in.contiguous();
  const auto [order, offsets] = chosen_pairs_by_row(idx_p, idx_n, N);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bdb_ext::_batch_hard_mine_backward", [&] {
    const LaunchShape shape = mining_backward_launch(N, D);
    auto kernel = mining_backward_kernel<scalar_t>;
    BDB_LAUNCH_KERNEL(kernel, dim3(static_cast<unsigned>(shape.blocks)), dim3(shape.threads), current_kernel_stream(),
                      grad_ap.const_data_ptr<scalar_t>(), grad_an.const_data_ptr<scalar_t>(),
                      x.const_data_ptr<scalar_t>(), idx_p.const_data_ptr<int64_t>(), idx_n.const_data_ptr<int64_t>(),
                      d_ap.const_data_ptr<scalar_t>(), d_an.const_data_ptr<scalar_t>(),
                      order.const_data_ptr<int64_t>(), offsets.const_data_ptr<int64_t>(),
                      dx.mutable_data_ptr<scalar_t>(), N, D);
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
