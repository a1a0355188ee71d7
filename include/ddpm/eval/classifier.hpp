#pragma once
// A small CNN classifier that libddpm trains itself, for data where Inception features make
// little sense (Fashion-MNIST, MNIST: 28×28 gray). Its penultimate layer is the feature space
// for FID/KID/precision/recall ("classifier features", as in the MNIST-FID literature).
//
//   conv3×3(C→w₁) ReLU maxpool2 · conv3×3(w₁→w₂) ReLU maxpool2 · linear(w₂·⌊H/4⌋·⌊W/4⌋ → hidden) ReLU
//   · linear(hidden → classes)
// Input: uint8 images mapped to [−1, 1] (x / 127.5 − 1), like the DDPM data.
#include <ATen/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ddpm/eval/features.hpp"

namespace ddpm::eval {

/// The classifier's shape (see the layers above).
struct ClassifierConfig {
  /// The input images' channels, height and width.
  ///@{
  int64_t channels = 1, height = 28, width = 28;
  ///@}
  /// The number of classes (the last layer's outputs).
  int64_t classes = 10;
  /// The two convolutions' widths w₁, w₂ and the feature dimension (the penultimate layer).
  ///@{
  int64_t width1 = 16, width2 = 32, hidden = 128;
  ///@}
  void validate() const;  ///< throws std::invalid_argument
};

/// The small CNN described above (TORCH_MODULE: Classifier).
class ClassifierImpl : public torch::nn::Module {
 public:
  /// Builds the layers for `config`, freshly initialised.
  explicit ClassifierImpl(const ClassifierConfig& config);
  /// x: float [N, C, H, W] in [−1, 1] → logits [N, classes].
  at::Tensor forward(const at::Tensor& x);
  /// The penultimate activations [N, hidden] (after the ReLU).
  at::Tensor features(const at::Tensor& x);
  /// The shape it was built with.
  const ClassifierConfig& config() const { return config_; }

 private:
  ClassifierConfig config_;
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(Classifier);

/// How fit_classifier trains.
struct FitOptions {
  /// Passes over the training images.
  int64_t epochs = 2;
  /// Images per Adam step.
  int64_t batch_size = 128;
  double lr = 2e-3;  ///< Adam
  /// Initialisation and shuffling seed.
  uint64_t seed = 0;
};

/// What fit_classifier measured.
struct FitReport {
  /// Fraction of the test images classified right.
  double test_accuracy = 0;
  double final_train_loss = 0;  ///< mean cross-entropy over the last epoch
  /// Images trained on and tested on.
  ///@{
  int64_t train_count = 0, test_count = 0;
  ///@}
  /// Wall-clock time of the fit.
  double seconds = 0;
};

/// Trains `model` (CPU) on uint8 images [N, C, H, W] with int64 labels [N] in [0, classes),
/// then measures accuracy on the test set. progress(epoch, batch, batches_per_epoch) is called
/// after each batch. Throws std::invalid_argument for mismatched shapes or labels out of range.
FitReport fit_classifier(Classifier& model, const at::Tensor& images, const at::Tensor& labels,
                         const at::Tensor& test_images, const at::Tensor& test_labels, const FitOptions& options,
                         const std::function<void(int64_t, int64_t, int64_t)>& progress = nullptr);

/// Fraction of images [N, C, H, W] (uint8) classified as their label.
double classifier_accuracy(Classifier& model, const at::Tensor& images, const at::Tensor& labels);

/// Writes the classifier (marker "libddpm-classifier", its config, its test accuracy, the
/// weights) atomically.
void save_classifier(const std::string& path, const Classifier& model, double test_accuracy);
/// Throws std::invalid_argument naming the file unless it is a libddpm classifier.
Classifier load_classifier(const std::string& path, double* test_accuracy = nullptr);
/// Whether `path` is a libddpm classifier file (false for anything else, never throws).
bool is_classifier_file(const std::string& path);

/// The classifier's penultimate layer as a feature network; images must be C × H × W as trained.
std::unique_ptr<FeatureNetwork> classifier_features(const std::string& path, c10::Device device = c10::kCPU);

}  // namespace ddpm::eval
