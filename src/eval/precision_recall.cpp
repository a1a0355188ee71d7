#include "ddpm/eval/precision_recall.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace ddpm::eval {
namespace {

// Squared Euclidean distances between rows a [n, D] and b [m, D], clamped at 0 (round-off).
at::Tensor squared_distances(const at::Tensor& a, const at::Tensor& b) {
  return (a.pow(2).sum(1, true) - 2.0 * a.mm(b.t()) + b.pow(2).sum(1).unsqueeze(0)).clamp_min(0);
}

// Squared radius of each point: distance² to its k-th nearest neighbour in its own set. The
// point's own (zero) distance is the smallest, so the k-th neighbour is the (k+1)-th smallest.
at::Tensor kth_radii(const at::Tensor& x, int64_t k, int64_t block) {
  std::vector<at::Tensor> radii;
  for (int64_t start = 0; start < x.size(0); start += block) {
    at::Tensor rows = x.narrow(0, start, std::min(block, x.size(0) - start));
    radii.push_back(std::get<0>(at::kthvalue(squared_distances(rows, x), k + 1, 1)));
  }
  return at::cat(radii);
}

// Fraction of the points of `query` that lie within the radius of at least one point of `ref`.
double coverage(const at::Tensor& query, const at::Tensor& ref, const at::Tensor& ref_radii, int64_t block) {
  int64_t inside = 0;
  for (int64_t start = 0; start < query.size(0); start += block) {
    at::Tensor rows = query.narrow(0, start, std::min(block, query.size(0) - start));
    inside += (squared_distances(rows, ref) <= ref_radii.unsqueeze(0)).any(1).sum().item<int64_t>();
  }
  return static_cast<double>(inside) / static_cast<double>(query.size(0));
}

}  // namespace

PrecisionRecall precision_recall(const at::Tensor& real_in, const at::Tensor& fake_in, int64_t k, int64_t block) {
  if (real_in.dim() != 2 || fake_in.dim() != 2)
    throw std::invalid_argument("precision/recall: features must be [N, D] matrices");
  if (real_in.size(1) != fake_in.size(1))
    throw std::invalid_argument("precision/recall: feature dimensions differ (" + std::to_string(real_in.size(1)) +
                                " vs " + std::to_string(fake_in.size(1)) + ")");
  if (k < 1) throw std::invalid_argument("precision/recall: k must be >= 1");
  if (real_in.size(0) <= k || fake_in.size(0) <= k)
    throw std::invalid_argument("precision/recall: each set needs more than k = " + std::to_string(k) + " images");
  if (block < 1) throw std::invalid_argument("precision/recall: block must be >= 1");
  at::Tensor real = real_in.to(at::kCPU, at::kDouble), fake = fake_in.to(at::kCPU, at::kDouble);
  PrecisionRecall r;
  r.k = k;
  r.precision = coverage(fake, real, kth_radii(real, k, block), block);
  r.recall = coverage(real, fake, kth_radii(fake, k, block), block);
  return r;
}

}  // namespace ddpm::eval
