#pragma once
// Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased
// estimator of the squared MMD with the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³,
// averaged over random subsets of both sets:
//
//   MMD²_u = Σ_{i≠j} k(xᵢ,xⱼ) / m(m−1) + Σ_{i≠j} k(yᵢ,yⱼ) / m(m−1) − 2 Σ_{i,j} k(xᵢ,yⱼ) / m²
//
// Unbiased: its expectation is the population MMD², 0 when both sets come from one
// distribution, so small values can be negative. Reported like clean-fid / torch-fidelity:
// the mean and the standard deviation (ddof 0) of the per-subset values.
#include <ATen/Tensor.h>

#include <cstdint>

namespace ddpm::eval {

/// How KID draws its subsets.
struct KidOptions {
  /// The number of random subsets averaged over.
  int64_t subsets = 100;
  int64_t subset_size = 1000;  ///< capped by the smaller set's size
  uint64_t seed = 0;           ///< which subsets are drawn (without replacement, per set)
};

/// KID, the unbiased MMD² with the cubic kernel, over random subsets.
struct KidResult {
  /// The mean and the standard deviation (ddof 0) of the per-subset MMD².
  ///@{
  double mean = 0, std = 0;
  ///@}
  /// The number of subsets and their size, as actually used.
  ///@{
  int64_t subsets = 0, subset_size = 0;  ///< what was actually used
  ///@}
};

/// x: [N, D], y: [M, D] features (any floating type; computed in float64).
/// Throws std::invalid_argument if D differs or a set has fewer than 2 rows.
KidResult kernel_inception_distance(const at::Tensor& x, const at::Tensor& y, const KidOptions& options = {});

/// One unbiased MMD² between two whole sets (x [m, D], y [n, D], m, n >= 2; the cross term's
/// divisor is m·n).
double mmd2_unbiased(const at::Tensor& x, const at::Tensor& y);

}  // namespace ddpm::eval
