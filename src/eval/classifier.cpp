#include "ddpm/eval/classifier.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>
#include <torch/serialize/output-archive.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "ddpm/io/atomic_file.hpp"
#include "ddpm/util/errors.hpp"
#include "io/torch_archive.hpp"

namespace ddpm::eval {
namespace {

constexpr const char* kMarker = "libddpm-classifier";

at::Tensor to_signed(const at::Tensor& images_uint8) { return images_uint8.to(at::kFloat) / 127.5 - 1.0; }

void check_images(const ClassifierConfig& c, const at::Tensor& images, const std::string& what) {
  if (images.dim() != 4 || images.size(1) != c.channels || images.size(2) != c.height || images.size(3) != c.width)
    bad_input(what, "images must be " + std::to_string(c.channels) + "×" + std::to_string(c.height) + "×" +
                        std::to_string(c.width) + " for this classifier, got " +
                        (images.dim() == 4 ? std::to_string(images.size(1)) + "×" + std::to_string(images.size(2)) +
                                                 "×" + std::to_string(images.size(3))
                                           : std::to_string(images.dim()) + "-d tensor"));
}

void check_labels(const ClassifierConfig& c, const at::Tensor& images, const at::Tensor& labels,
                  const std::string& what) {
  check_images(c, images, what);
  if (labels.dim() != 1 || labels.size(0) != images.size(0))
    bad_input(what, std::to_string(labels.numel()) + " labels for " + std::to_string(images.size(0)) + " images");
  if (labels.numel() > 0 && (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= c.classes))
    bad_input(what, "labels must be in [0, " + std::to_string(c.classes) + ")");
}

}  // namespace

void ClassifierConfig::validate() const {
  if (channels < 1 || height < 4 || width < 4) bad_input("classifier", "images must be at least 4×4");
  if (classes < 2) bad_input("classifier", "needs at least 2 classes");
  if (width1 < 1 || width2 < 1 || hidden < 1) bad_input("classifier", "layer widths must be >= 1");
}

ClassifierImpl::ClassifierImpl(const ClassifierConfig& config) : config_(config) {
  config_.validate();
  using torch::nn::Conv2dOptions;
  conv1_ = register_module("conv1", torch::nn::Conv2d(Conv2dOptions(config.channels, config.width1, 3).padding(1)));
  conv2_ = register_module("conv2", torch::nn::Conv2d(Conv2dOptions(config.width1, config.width2, 3).padding(1)));
  fc1_ = register_module("fc1", torch::nn::Linear(config.width2 * (config.height / 4) * (config.width / 4), config.hidden));
  fc2_ = register_module("fc2", torch::nn::Linear(config.hidden, config.classes));
}

at::Tensor ClassifierImpl::features(const at::Tensor& x) {
  at::Tensor h = at::max_pool2d(at::relu(conv1_->forward(x)), {2, 2});
  h = at::max_pool2d(at::relu(conv2_->forward(h)), {2, 2});
  return at::relu(fc1_->forward(h.flatten(1)));
}

at::Tensor ClassifierImpl::forward(const at::Tensor& x) { return fc2_->forward(features(x)); }

double classifier_accuracy(Classifier& model, const at::Tensor& images, const at::Tensor& labels) {
  check_labels(model->config(), images, labels, "classifier accuracy");
  if (images.size(0) == 0) return 0;
  c10::InferenceMode guard;
  model->eval();
  int64_t correct = 0;
  for (int64_t start = 0; start < images.size(0); start += 512) {
    const int64_t n = std::min<int64_t>(512, images.size(0) - start);
    at::Tensor logits = model->forward(to_signed(images.narrow(0, start, n)));
    correct += (logits.argmax(1) == labels.narrow(0, start, n)).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(images.size(0));
}

FitReport fit_classifier(Classifier& model, const at::Tensor& images, const at::Tensor& labels,
                         const at::Tensor& test_images, const at::Tensor& test_labels, const FitOptions& options,
                         const std::function<void(int64_t, int64_t, int64_t)>& progress) {
  const ClassifierConfig& c = model->config();
  check_labels(c, images, labels, "--data/--labels");
  check_labels(c, test_images, test_labels, "test images/labels");
  if (images.size(0) < 1) bad_input("--data", "no training images");
  if (test_images.size(0) < 1) bad_input("test set", "no test images");
  if (options.epochs < 1 || options.batch_size < 1 || !(options.lr > 0))
    bad_input("fit-classifier", "epochs, batch size and learning rate must be positive");
  const auto start = std::chrono::steady_clock::now();
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(options.lr));
  at::Generator gen = at::detail::createCPUGenerator(options.seed);
  const int64_t n = images.size(0);
  const int64_t batches = (n + options.batch_size - 1) / options.batch_size;
  FitReport report;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    model->train();
    at::Tensor order = at::randperm(n, gen, at::kLong);
    double loss_sum = 0;
    for (int64_t b = 0; b < batches; ++b) {
      at::Tensor idx = order.narrow(0, b * options.batch_size, std::min(options.batch_size, n - b * options.batch_size));
      at::Tensor logits = model->forward(to_signed(images.index_select(0, idx)));
      at::Tensor loss = torch::nn::functional::cross_entropy(logits, labels.index_select(0, idx));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>();
      if (progress) progress(epoch, b + 1, batches);
    }
    report.final_train_loss = loss_sum / static_cast<double>(batches);
  }
  report.test_accuracy = classifier_accuracy(model, test_images, test_labels);
  report.train_count = n;
  report.test_count = test_images.size(0);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

void save_classifier(const std::string& path, const Classifier& model, double test_accuracy) {
  const ClassifierConfig& c = model->config();
  torch::serialize::OutputArchive archive;
  archive.write("libddpm", c10::IValue(std::string(kMarker)));
  for (const auto& [key, value] : {std::pair<const char*, int64_t>{"channels", c.channels}, {"height", c.height},
                                   {"width", c.width}, {"classes", c.classes}, {"width1", c.width1},
                                   {"width2", c.width2}, {"hidden", c.hidden}})
    archive.write(key, c10::IValue(value));
  archive.write("test_accuracy", c10::IValue(test_accuracy));
  torch::serialize::OutputArchive weights;
  model->save(weights);
  archive.write("model", weights);
  const std::filesystem::path target(path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  // Serialised in memory, then written atomically (a failed write leaves the old file, no .tmp).
  std::ostringstream bytes;
  try {
    archive.save_to(bytes);
  } catch (const std::exception& e) {
    throw std::runtime_error("'" + path + "': cannot serialise (" + first_line(e.what()) + ")");
  }
  io::write_file_atomically(path, bytes.str());
}

namespace {
// Read by libddpm's own archive reader (io/torch_archive.hpp), never LibTorch's loader.
bool read_marker(const std::string& path, io::TorchArchive& archive) {
  try {
    archive = io::read_torch_archive(path);
  } catch (const std::exception&) {
    return false;
  }
  const c10::IValue* v = archive.value("libddpm");
  return v && v->isString() && v->toStringRef() == kMarker;
}
}  // namespace

bool is_classifier_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  io::TorchArchive archive;
  return read_marker(path, archive);
}

Classifier load_classifier(const std::string& path, double* test_accuracy) {
  const std::string what = "classifier '" + path + "'";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) bad_input(what, "cannot open");
  io::TorchArchive archive;
  if (!read_marker(path, archive)) bad_input(what, "not a libddpm classifier (see ddpm-eval fit-classifier)");
  ClassifierConfig c;
  for (auto [key, field] : {std::pair<const char*, int64_t*>{"channels", &c.channels}, {"height", &c.height},
                            {"width", &c.width}, {"classes", &c.classes}, {"width1", &c.width1},
                            {"width2", &c.width2}, {"hidden", &c.hidden}}) {
    const c10::IValue* v = archive.value(key);
    if (!v || !v->isInt()) bad_input(what, std::string("has no '") + key + "'");
    *field = v->toInt();
    if (*field < 1 || *field > 65536) bad_input(what, std::string("implausible '") + key + "'");
  }
  const c10::IValue* acc = archive.value("test_accuracy");
  if (test_accuracy) *test_accuracy = acc && acc->isDouble() ? acc->toDouble() : -1;
  const io::TorchArchive* weights = archive.child("model");
  if (!weights) bad_input(what, "has no weights");
  Classifier model(c);
  try {
    io::load_module(*weights, *model);
  } catch (const std::exception& e) {
    bad_input(what, "weights do not fit its config (" + first_line(e.what()) + ")");
  }
  model->eval();
  return model;
}

namespace {
class ClassifierFeatures : public FeatureNetwork {
 public:
  ClassifierFeatures(const std::string& path, c10::Device device) : path_(path), device_(device) {
    model_ = load_classifier(path, &accuracy_);
    model_->to(device);
  }
  at::Tensor features(const at::Tensor& images) override {
    check_images(model_->config(), images, "classifier '" + path_ + "'");
    c10::InferenceMode guard;
    return model_->features(to_signed(images.to(device_))).to(at::kCPU, at::kFloat);
  }
  std::string describe() const override {
    char acc[32];
    std::snprintf(acc, sizeof(acc), "%.4f", accuracy_);
    return "classifier '" + path_ + "' (penultimate layer, " + std::to_string(model_->config().hidden) +
           "-d, test accuracy " + acc + ")";
  }

 private:
  std::string path_;
  c10::Device device_;
  Classifier model_{nullptr};
  double accuracy_ = -1;
};
}  // namespace

std::unique_ptr<FeatureNetwork> classifier_features(const std::string& path, c10::Device device) {
  return std::make_unique<ClassifierFeatures>(path, device);
}

}  // namespace ddpm::eval
