#pragma once
// Classifier-free guidance settings (weight and σ interval): the one struct that sampling,
// ddpm-eval, the trainer's evaluations (eval-guidance, eval-guidance-interval) and a
// distillation's teacher (guidance, guidance-interval) all hold. steering.hpp applies it.
#include <cmath>
#include <limits>
#include <string>

namespace ddpm {

/// Classifier-free guidance as the tools take it: weight w and the σ interval where it applies.
struct Guidance {
  double weight = 0.0;      ///< w >= 0; 0 = plain conditional sampling (one forward per step)
  double sigma_low = 0.0;   ///< guided only where σ_t is in (sigma_low, sigma_high]
  /// the interval's upper end (∞: no upper limit)
  double sigma_high = std::numeric_limits<double>::infinity();
  /// Whether the interval excludes some steps.
  bool limited() const { return sigma_low > 0.0 || std::isfinite(sigma_high); }
  std::string describe() const;  ///< "guidance 2" or "guidance 2 for σ in (0.28, 5.42]"
  /// Throws BadInput naming --guidance (w outside [0, 1000]) or --guidance-interval
  /// (not 0 <= sigma_low < sigma_high).
  void validate() const;
};

}  // namespace ddpm
