#include "ddpm/eval/kid.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace ddpm::eval {
namespace {

at::Tensor cubic_kernel(const at::Tensor& a, const at::Tensor& b) {
  const double d = static_cast<double>(a.size(1));
  return (a.mm(b.t()) / d + 1.0).pow(3);
}

// The first m entries of a uniform random permutation of 0..n−1 (partial Fisher–Yates on
// mt19937_64 with our own bounded draw, so the subsets do not depend on the standard library).
std::vector<int64_t> draw_subset(int64_t n, int64_t m, std::mt19937_64& rng) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  for (int64_t i = 0; i < m; ++i) {
    const uint64_t range = static_cast<uint64_t>(n - i);
    const uint64_t limit = UINT64_MAX - UINT64_MAX % range;  // rejection: no modulo bias
    uint64_t r;
    do r = rng(); while (r >= limit);
    std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(i + static_cast<int64_t>(r % range))]);
  }
  idx.resize(static_cast<size_t>(m));
  return idx;
}

void check_pair(const at::Tensor& x, const at::Tensor& y) {
  if (x.dim() != 2 || y.dim() != 2) throw std::invalid_argument("KID: features must be [N, D] matrices");
  if (x.size(1) != y.size(1))
    throw std::invalid_argument("KID: feature dimensions differ (" + std::to_string(x.size(1)) + " vs " +
                                std::to_string(y.size(1)) + ")");
  if (x.size(0) < 2 || y.size(0) < 2) throw std::invalid_argument("KID: each set needs at least 2 images");
}

}  // namespace

double mmd2_unbiased(const at::Tensor& x_in, const at::Tensor& y_in) {
  check_pair(x_in, y_in);
  at::Tensor x = x_in.to(at::kCPU, at::kDouble), y = y_in.to(at::kCPU, at::kDouble);
  const double m = static_cast<double>(x.size(0)), n = static_cast<double>(y.size(0));
  at::Tensor kxx = cubic_kernel(x, x), kyy = cubic_kernel(y, y), kxy = cubic_kernel(x, y);
  const double sxx = (kxx.sum() - kxx.trace()).item<double>() / (m * (m - 1));
  const double syy = (kyy.sum() - kyy.trace()).item<double>() / (n * (n - 1));
  const double sxy = kxy.sum().item<double>() / (m * n);
  return sxx + syy - 2.0 * sxy;
}

KidResult kernel_inception_distance(const at::Tensor& x_in, const at::Tensor& y_in, const KidOptions& options) {
  check_pair(x_in, y_in);
  if (options.subsets < 1) throw std::invalid_argument("KID: --kid-subsets must be >= 1");
  if (options.subset_size < 2) throw std::invalid_argument("KID: --kid-subset-size must be >= 2");
  at::Tensor x = x_in.to(at::kCPU, at::kDouble), y = y_in.to(at::kCPU, at::kDouble);
  const int64_t m = std::min({options.subset_size, x.size(0), y.size(0)});
  std::mt19937_64 rng(options.seed);
  std::vector<double> values;
  values.reserve(static_cast<size_t>(options.subsets));
  for (int64_t s = 0; s < options.subsets; ++s) {
    std::vector<int64_t> ix = draw_subset(x.size(0), m, rng), iy = draw_subset(y.size(0), m, rng);
    at::Tensor tx = at::from_blob(ix.data(), {m}, at::kLong), ty = at::from_blob(iy.data(), {m}, at::kLong);
    values.push_back(mmd2_unbiased(x.index_select(0, tx), y.index_select(0, ty)));
  }
  KidResult r;
  r.subsets = options.subsets;
  r.subset_size = m;
  r.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  double var = 0;
  for (double v : values) var += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(var / static_cast<double>(values.size()));
  return r;
}

}  // namespace ddpm::eval
