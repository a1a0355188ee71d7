#pragma once
// Feature statistics and the Fréchet distance (FID when the features are Inception's;
// Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule").
//
//   FD² = |μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁ Σ₂)^{1/2}
//
// Everything is float64. tr (Σ₁Σ₂)^{1/2} is taken from the eigenvalues of the symmetric
// matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2} (same spectrum as Σ₁Σ₂), so no non-symmetric square root and no
// complex parts: √Σ₁ by eigh with negative eigenvalues (round-off) clamped to 0, then eigvalsh.
#include <ATen/Tensor.h>

#include <cstdint>
#include <string>

namespace ddpm::eval {

/// μ and Σ of a feature set. sigma is the unbiased covariance (divisor n − 1, as np.cov,
/// pytorch-fid and clean-fid use). `features` names the network, "" when unknown
/// (e.g. a published .npz).
struct FeatureStats {
  at::Tensor mu;     ///< float64 [D]
  at::Tensor sigma;  ///< float64 [D, D]
  int64_t count = 0;  ///< images the statistics were computed from (0 = unknown)
  /// The feature network's description ("" when unknown).
  std::string features;

  /// D, the feature dimension.
  int64_t dim() const;
  /// Throws std::invalid_argument (`what` names the source) unless mu is [D], sigma [D, D],
  /// D >= 1, both float64 and finite.
  void validate(const std::string& what) const;
};

/// Streaming μ and Σ over batches of features [N, D], exact in float64 whatever the batching
/// (Chan et al.'s pairwise update of the mean and the centred second moment, so large means
/// do not cancel the variance as Σxxᵀ/n − μμᵀ would).
class StatsAccumulator {
 public:
  /// An empty accumulator for `dim`-dimensional features.
  explicit StatsAccumulator(int64_t dim);
  /// features: [N, D], any floating type, any device (copied to float64 CPU).
  void add(const at::Tensor& features);
  /// Features added so far.
  int64_t count() const { return count_; }
  /// D, the feature dimension.
  int64_t dim() const { return dim_; }
  /// Throws std::invalid_argument if fewer than 2 samples were added.
  FeatureStats finish(std::string features = "") const;

 private:
  int64_t dim_, count_ = 0;
  at::Tensor mean_, m2_;  // float64 [D], [D, D]: Σ (x − mean)(x − mean)ᵀ
};

/// Statistics of one feature matrix [N, D] (N >= 2).
FeatureStats compute_stats(const at::Tensor& features, std::string name = "");

/// The Fréchet distance FD² (a squared distance, as FID is reported). Throws
/// std::invalid_argument when the dimensions differ.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);
/// The same from the moments directly (float64 CPU tensors).
double frechet_distance(const at::Tensor& mu1, const at::Tensor& sigma1, const at::Tensor& mu2,
                        const at::Tensor& sigma2);

}  // namespace ddpm::eval
