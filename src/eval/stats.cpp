#include "ddpm/eval/stats.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <tuple>

namespace ddpm::eval {
namespace {

// In place: at::isfinite builds |x| and two masks, 1.2 copies of a sigma that may be 2 GB.
bool all_finite(const at::Tensor& t) {
  if (!t.device().is_cpu()) return at::isfinite(t).all().item<bool>();
  const at::Tensor c = t.contiguous();  // statistics are contiguous: no copy
  const double* p = c.data_ptr<double>();
  return std::all_of(p, p + c.numel(), [](double x) { return std::isfinite(x); });
}

}  // namespace

int64_t FeatureStats::dim() const { return mu.defined() ? mu.numel() : 0; }

void FeatureStats::validate(const std::string& what) const {
  if (!mu.defined() || !sigma.defined()) throw std::invalid_argument(what + ": missing mu or sigma");
  if (mu.dim() != 1 || mu.numel() < 1) throw std::invalid_argument(what + ": mu must be a non-empty vector [D]");
  const int64_t D = mu.numel();
  if (sigma.dim() != 2 || sigma.size(0) != D || sigma.size(1) != D)
    throw std::invalid_argument(what + ": sigma must be [" + std::to_string(D) + ", " + std::to_string(D) +
                                "] to match mu");
  if (mu.scalar_type() != at::kDouble || sigma.scalar_type() != at::kDouble)
    throw std::invalid_argument(what + ": mu and sigma must be float64");
  if (!all_finite(mu) || !all_finite(sigma))
    throw std::invalid_argument(what + ": mu or sigma holds NaN or infinity");
}

StatsAccumulator::StatsAccumulator(int64_t dim) : dim_(dim) {
  if (dim < 1) throw std::invalid_argument("feature statistics: dimension must be >= 1");
  mean_ = at::zeros({dim}, at::kDouble);
  m2_ = at::zeros({dim, dim}, at::kDouble);
}

void StatsAccumulator::add(const at::Tensor& features) {
  if (features.dim() != 2 || features.size(1) != dim_)
    throw std::invalid_argument("feature statistics: expected features [N, " + std::to_string(dim_) + "], got " +
                                std::to_string(features.dim()) + "-d tensor" +
                                (features.dim() == 2 ? " [" + std::to_string(features.size(0)) + ", " +
                                                           std::to_string(features.size(1)) + "]"
                                                     : ""));
  const int64_t nb = features.size(0);
  if (nb == 0) return;
  at::Tensor x = features.to(at::kCPU, at::kDouble);
  at::Tensor mean_b = x.mean(0);
  at::Tensor centred = x - mean_b;
  at::Tensor m2_b = centred.t().mm(centred);
  const double na = static_cast<double>(count_), n = na + nb;
  at::Tensor delta = mean_b - mean_;
  mean_ = mean_ + delta * (nb / n);
  m2_ = m2_ + m2_b + at::outer(delta, delta) * (na * nb / n);
  count_ += nb;
}

FeatureStats StatsAccumulator::finish(std::string features) const {
  if (count_ < 2)
    throw std::invalid_argument("feature statistics: need at least 2 images for a covariance, got " +
                                std::to_string(count_));
  at::Tensor sigma = m2_ / static_cast<double>(count_ - 1);
  return {mean_.clone(), (sigma + sigma.t()) * 0.5, count_, std::move(features)};
}

FeatureStats compute_stats(const at::Tensor& features, std::string name) {
  if (features.dim() != 2) throw std::invalid_argument("feature statistics: expected features [N, D]");
  // NaN features would surface only as "linalg.eigh failed to converge" in the FID, naming nothing.
  if (const int64_t bad = (~at::isfinite(features)).sum().item<int64_t>(); bad > 0)
    throw std::invalid_argument("features" + (name.empty() ? std::string() : " of " + name) + ": " +
                                std::to_string(bad) + " of " + std::to_string(features.numel()) +
                                " values are NaN or infinite (the feature network's output); no statistics");
  StatsAccumulator acc(features.size(1));
  acc.add(features);
  return acc.finish(std::move(name));
}

namespace {
// √S of a symmetric positive semi-definite S: V diag(√max(λ, 0)) Vᵀ.
at::Tensor sqrt_psd(const at::Tensor& s) {
  at::Tensor eigenvalues, eigenvectors;
  std::tie(eigenvalues, eigenvectors) = at::linalg_eigh(s);
  return eigenvectors.mm(at::diag(eigenvalues.clamp_min(0).sqrt())).mm(eigenvectors.t());
}
}  // namespace

double frechet_distance(const at::Tensor& mu1_in, const at::Tensor& sigma1_in, const at::Tensor& mu2_in,
                        const at::Tensor& sigma2_in) {
  at::Tensor mu1 = mu1_in.to(at::kCPU, at::kDouble), mu2 = mu2_in.to(at::kCPU, at::kDouble);
  at::Tensor s1 = sigma1_in.to(at::kCPU, at::kDouble), s2 = sigma2_in.to(at::kCPU, at::kDouble);
  if (mu1.numel() != mu2.numel() || s1.sizes() != s2.sizes())
    throw std::invalid_argument("Fréchet distance: feature dimensions differ (" + std::to_string(mu1.numel()) +
                                " vs " + std::to_string(mu2.numel()) + ")");
  if (!at::isfinite(mu1).all().item<bool>() || !at::isfinite(s1).all().item<bool>() ||
      !at::isfinite(mu2).all().item<bool>() || !at::isfinite(s2).all().item<bool>())
    throw std::invalid_argument("Fréchet distance: the statistics hold NaN or infinity");
  s1 = (s1 + s1.t()) * 0.5;
  s2 = (s2 + s2.t()) * 0.5;
  at::Tensor root1 = sqrt_psd(s1);
  at::Tensor m = root1.mm(s2).mm(root1);
  at::Tensor lambda = at::linalg_eigvalsh((m + m.t()) * 0.5);
  const double tr_sqrt = lambda.clamp_min(0).sqrt().sum().item<double>();
  const double mean_term = (mu1 - mu2).pow(2).sum().item<double>();
  const double fd = mean_term + s1.trace().item<double>() + s2.trace().item<double>() - 2.0 * tr_sqrt;
  // Round-off can leave a tiny negative value for identical statistics.
  return fd < 0 ? 0.0 : fd;
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  if (a.dim() != b.dim())
    throw std::invalid_argument("Fréchet distance: feature dimensions differ (" + std::to_string(a.dim()) + " vs " +
                                std::to_string(b.dim()) + "); were both computed with the same network?");
  return frechet_distance(a.mu, a.sigma, b.mu, b.sigma);
}

}  // namespace ddpm::eval
