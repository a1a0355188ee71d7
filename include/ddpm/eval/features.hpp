#pragma once
// Feature networks: images in, one feature vector per image out. Two kinds:
//  - a TorchScript module given by path (e.g. NVIDIA's Inception-v3 used by StyleGAN2-ADA and
//    EDM, see docs in ddpm-eval --help / README), called as forward(images) — with
//    return_features=True when its forward has that argument, as NVIDIA's does;
//  - libddpm's own small classifier (classifier.hpp), its penultimate layer.
#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>

namespace ddpm::eval {

/// A network that maps images to feature vectors, the space FID, KID and precision/recall
/// are measured in (the fitted classifier or a TorchScript module).
class FeatureNetwork {
 public:
  virtual ~FeatureNetwork() = default;
  /// images: uint8 [N, C, H, W] (CPU). Returns float32 [N, D] on the CPU. Throws
  /// std::invalid_argument (one line) when the images do not fit the network or the network
  /// does not return [N, D].
  virtual at::Tensor features(const at::Tensor& images) = 0;
  /// One line for every output: what the features are, e.g.
  /// "classifier 'clf.pt' (penultimate layer, 128-d, test accuracy 0.901)".
  virtual std::string describe() const = 0;
};

/// How a TorchScript module wants its input.
enum class ScriptInput {
  Uint8,   ///< uint8 0..255 unchanged (NVIDIA's Inception: it converts and resizes itself)
  Unit,    ///< float32 in [0, 1]
  Signed,  ///< float32 in [−1, 1]
};
ScriptInput parse_script_input(const std::string& text);  ///< "uint8" | "unit" | "signed"
/// "uint8", "unit" or "signed".
std::string to_string(ScriptInput input);

/// How images are given to a TorchScript feature module.
struct ScriptOptions {
  /// The value range the module expects.
  ScriptInput input = ScriptInput::Uint8;
  bool rgb = true;     ///< repeat 1-channel images to 3 channels (as StyleGAN2-ADA/EDM do)
  int64_t resize = 0;  ///< > 0: bilinear resize to resize × resize before the call
};

/// Loads a TorchScript module (torch::jit::load) onto `device`, in eval mode. Throws
/// std::invalid_argument naming the file when it cannot be loaded.
std::unique_ptr<FeatureNetwork> load_torchscript_features(const std::string& path, const ScriptOptions& options,
                                                          c10::Device device = c10::kCPU);

/// "classifier:PATH", "torchscript:PATH", or a bare PATH: a libddpm classifier file if it
/// carries the classifier marker, else TorchScript.
std::unique_ptr<FeatureNetwork> load_feature_network(const std::string& spec, const ScriptOptions& script_options,
                                                     c10::Device device = c10::kCPU);

}  // namespace ddpm::eval
