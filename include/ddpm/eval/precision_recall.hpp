#pragma once
// Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall
// Metric for Assessing Generative Models"). Each set's manifold is the union of balls around
// its points, each ball's radius the distance to that point's k-th nearest neighbour in the
// same set (k = 3 in the paper; the point itself does not count).
//   precision = fraction of generated points inside the real manifold
//   recall    = fraction of real points inside the generated manifold
#include <ATen/Tensor.h>

#include <cstdint>

namespace ddpm::eval {

/// Improved precision and recall (Kynkäänniemi et al. 2019) with k-nearest-neighbour radii.
struct PrecisionRecall {
  /// Precision: the fraction of fakes inside the real manifold; recall: of reals inside the fake one.
  ///@{
  double precision = 0, recall = 0;
  ///@}
  /// The neighbour whose distance is each point's radius.
  int64_t k = 0;
};

/// real: [N, D], fake: [M, D] (any floating type; distances in float64, computed in row
/// blocks of `block` so memory stays O(block · max(N, M))). k must be < both N and M.
/// Throws std::invalid_argument for mismatched dimensions or too few points.
PrecisionRecall precision_recall(const at::Tensor& real, const at::Tensor& fake, int64_t k = 3,
                                 int64_t block = 1024);

}  // namespace ddpm::eval
