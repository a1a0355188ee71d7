// TorchScript feature networks (torch::jit::load).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <filesystem>
#include <stdexcept>

#include "ddpm/eval/classifier.hpp"
#include "ddpm/eval/features.hpp"
#include "ddpm/eval/stats_file.hpp"
#include "ddpm/util/errors.hpp"
#include "util/enum_names.hpp"

namespace ddpm::eval {

namespace {
constexpr util::EnumName<ScriptInput> kScriptInputs[] = {
    {ScriptInput::Uint8, "uint8"}, {ScriptInput::Unit, "unit"}, {ScriptInput::Signed, "signed"}};
}  // namespace

ScriptInput parse_script_input(const std::string& text) {
  return util::parse_enum(kScriptInputs, text, "--script-input");
}

std::string to_string(ScriptInput input) { return util::enum_name(kScriptInputs, input); }

namespace {

std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

class ScriptFeatures : public FeatureNetwork {
 public:
  ScriptFeatures(const std::string& path, const ScriptOptions& options, c10::Device device)
      : path_(path), what_("TorchScript '" + path + "'"), options_(options), device_(device) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) bad_input(what_, "cannot open");
    try {
      module_ = torch::jit::load(path, device);
    } catch (const std::exception& e) {
      bad_input(what_, "cannot load (" + first_line(e.what()) + ")");
    }
    module_.eval();
    auto method = module_.find_method("forward");
    if (!method) bad_input(what_, "has no forward method");
    for (const auto& arg : method->function().getSchema().arguments())
      if (arg.name() == "return_features") return_features_ = true;
  }

  at::Tensor features(const at::Tensor& images) override {
    if (images.dim() != 4) bad_input(what_, "expected images [N, C, H, W]");
    at::Tensor x = images.to(device_);
    if (options_.rgb && x.size(1) == 1) x = x.repeat({1, 3, 1, 1});
    if (options_.input != ScriptInput::Uint8 || options_.resize > 0) {
      x = x.to(at::kFloat);
      if (options_.resize > 0)
        x = at::upsample_bilinear2d(x, {options_.resize, options_.resize}, false).clamp(0, 255);
      if (options_.input == ScriptInput::Unit) x = x / 255.0;
      if (options_.input == ScriptInput::Signed) x = x / 127.5 - 1.0;
      if (options_.input == ScriptInput::Uint8) x = x.round().to(at::kByte);
    }
    c10::IValue out;
    try {
      c10::InferenceMode guard;
      torch::jit::Kwargs kwargs;
      if (return_features_) kwargs.emplace("return_features", true);
      out = module_.get_method("forward")({x}, kwargs);
    } catch (const std::exception& e) {
      bad_input(what_, "forward failed on " + shape_of(x) + " " + std::string(c10::toString(x.scalar_type())) +
                           " input (" + first_line(e.what()) + ")");
    }
    if (!out.isTensor()) bad_input(what_, "forward returned a " + out.tagKind() + ", expected a tensor [N, D]");
    at::Tensor f = out.toTensor();
    if (f.dim() == 4 && f.size(2) == 1 && f.size(3) == 1) f = f.flatten(1);  // [N, D, 1, 1] pooled maps
    if (f.dim() != 2 || f.size(0) != images.size(0) || f.size(1) < 1 || !f.is_floating_point())
      bad_input(what_, "forward returned " + shape_of(out.toTensor()) + " " +
                           std::string(c10::toString(out.toTensor().scalar_type())) + " for " +
                           std::to_string(images.size(0)) + " images, expected floating features [N, D]");
    // The statistics are D×D (float64): the same cap as a statistics file's (a 25000-d output
    // would be a 5 GB covariance for three images).
    if (f.size(1) > kMaxStatsDim)
      bad_input(what_, "forward returned " + std::to_string(f.size(1)) + "-d features, more than the limit of " +
                           std::to_string(kMaxStatsDim));
    if (dim_ == 0) dim_ = f.size(1);
    return f.to(at::kCPU, at::kFloat);
  }

  std::string describe() const override {
    return "TorchScript '" + path_ + "' (input " + to_string(options_.input) + (options_.rgb ? ", gray→RGB" : "") +
           (options_.resize > 0 ? ", resized to " + std::to_string(options_.resize) : std::string()) +
           (return_features_ ? ", return_features=True" : "") +
           (dim_ > 0 ? ", " + std::to_string(dim_) + "-d" : std::string()) + ")";
  }

 private:
  std::string path_, what_;
  ScriptOptions options_;
  c10::Device device_;
  torch::jit::Module module_;
  bool return_features_ = false;
  int64_t dim_ = 0;
};

}  // namespace

std::unique_ptr<FeatureNetwork> load_torchscript_features(const std::string& path, const ScriptOptions& options,
                                                          c10::Device device) {
  return std::make_unique<ScriptFeatures>(path, options, device);
}

std::unique_ptr<FeatureNetwork> load_feature_network(const std::string& spec, const ScriptOptions& script_options,
                                                     c10::Device device) {
  if (spec.empty()) bad_input("--features", "no feature network given");
  if (spec.rfind("classifier:", 0) == 0) return classifier_features(spec.substr(11), device);
  if (spec.rfind("torchscript:", 0) == 0) return load_torchscript_features(spec.substr(12), script_options, device);
  if (is_classifier_file(spec)) return classifier_features(spec, device);
  return load_torchscript_features(spec, script_options, device);
}

}  // namespace ddpm::eval
