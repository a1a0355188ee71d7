#pragma once
// The one evaluation of sample quality that ddpm-eval and the trainer's eval-every share: a
// feature network, a reference (statistics read from a .npz, or the features of an image set,
// computed once and kept), and FID, KID and precision/recall of a set of images against it.
#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ddpm/eval/features.hpp"
#include "ddpm/eval/image_set.hpp"
#include "ddpm/eval/kid.hpp"
#include "ddpm/eval/precision_recall.hpp"
#include "ddpm/eval/stats.hpp"
#include "ddpm/pipeline/config.hpp"
#include "ddpm/samplers/steering.hpp"

namespace ddpm::eval {

/// Whether `source` names a statistics file (it ends in ".npz") rather than images.
bool is_stats_file(const std::string& source);

/// `n` images drawn by `network`, a model of `model`'s image shape and classes, with `sampler`
/// as given (its prediction must be the model's) on `schedule`, which must outlive the set: the
/// balanced class sampling of sampled_image_set(LoadedModel, ...) (image_set.hpp; image k uses
/// noise index k and asks for class k mod K under `guidance`), which the trainer's evaluations
/// use too. A network output with more channels than the images (learned variance) is narrowed.
std::unique_ptr<ImageSet> sampled_image_set(ConditionalDenoiser network, const NoiseSchedule& schedule,
                                            const UNetConfig& model, SamplerConfig sampler, int64_t n,
                                            Guidance guidance = {},
                                            std::function<void(int64_t, int64_t)> on_step = nullptr);

/// What Evaluator::compare measures, and how.
struct EvalOptions {
  /// Which numbers to report (KID and precision/recall also need reference features).
  ///@{
  bool fid = true, kid = true, pr = true;
  ///@}
  KidOptions kid_options;    ///< KID's subsets
  int64_t pr_k = 3;          ///< the neighbour whose distance is a precision/recall radius
  int64_t batch_size = 250;  ///< images per feature batch
};

/// The numbers of one comparison, and what was compared.
struct EvalResult {
  /// Descriptions of the feature network, the reference and the evaluated set.
  ///@{
  std::string features, real, fake;
  ///@}
  int64_t n_real = 0;  ///< reference images (a statistics file's count: 0 when unknown)
  int64_t n_fake = 0;  ///< evaluated images
  std::optional<double> fid;                 ///< when measured
  std::optional<KidResult> kid;              ///< when measured (reference features needed)
  std::optional<PrecisionRecall> pr;         ///< when measured (reference features needed)
  /// ddpm-eval's --json object: {"features", "real", "fake", "n_real", "n_fake"[, "fid"]
  /// [, "kid", "kid_std", "kid_subset_size"][, "precision", "recall", "pr_k"]}, the numbers
  /// with 6 significant digits (a non-finite one as null), as one line of text (the JSON
  /// writer is internal to the library).
  std::string to_json() const;
};

/// The reference an Evaluator measures against.
struct Reference {
  FeatureStats stats;       ///< its statistics
  at::Tensor features;      ///< float32 [N, D]; undefined when read from a statistics file
  std::string description;  ///< one line: "statistics 'ref.npz' (1000 images)" or the image set's
};

/// A feature network and a reference, loaded once: compare() measures image sets against them.
class Evaluator {
 public:
  /// Measures with `network` (not null) as `options` say.
  explicit Evaluator(std::unique_ptr<FeatureNetwork> network, EvalOptions options = {});

  /// The evaluation of a training run (TrainConfig's eval-features and eval-ref): the network
  /// loaded on `device`, the reference read or computed (its images must be the model's size),
  /// the feature dimensions checked against each other. Throws std::invalid_argument naming
  /// eval-ref or eval-features, so that a bad one fails before training starts.
  static std::unique_ptr<Evaluator> for_run(const Config& config, c10::Device device);

  /// The feature network.
  FeatureNetwork& network() const { return *network_; }
  /// The options given.
  const EvalOptions& options() const { return options_; }

  /// Reads the reference statistics from a .npz file (KID and precision/recall are then skipped).
  void reference_from_stats(const std::string& npz);
  /// Computes the reference from `images` (features kept for KID and precision/recall);
  /// progress(done, total) after each feature batch.
  void reference_from_images(ImageSet& images, const std::function<void(int64_t, int64_t)>& progress = nullptr);
  /// Whether a reference was set.
  bool has_reference() const { return reference_.stats.mu.defined(); }
  /// The reference (has_reference() must hold).
  const Reference& reference() const { return reference_; }

  /// The features of `images`, options().batch_size at a time (progress as above).
  at::Tensor features_of(ImageSet& images, const std::function<void(int64_t, int64_t)>& progress = nullptr) const;
  /// Measures `fake` against the reference: FID when options().fid; KID and precision/recall
  /// when asked for and the reference has features. Throws BadInput naming `reference_name`
  /// when the dimensions of the reference and of the features differ.
  EvalResult compare(const at::Tensor& fake_features, const std::string& fake_description,
                     const std::string& reference_name = "reference") const;
  /// compare() of the features of `fake`.
  EvalResult compare(ImageSet& fake, const std::function<void(int64_t, int64_t)>& progress = nullptr) const;

 private:
  std::unique_ptr<FeatureNetwork> network_;
  EvalOptions options_;
  Reference reference_;
};

}  // namespace ddpm::eval
