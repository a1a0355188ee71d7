#include "ddpm/eval/evaluator.hpp"

#include "io/json.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "ddpm/eval/stats_file.hpp"
#include "ddpm/util/errors.hpp"

namespace ddpm::eval {
namespace {

// 6 significant digits (what an ostream writes by default); null when not finite.
json::Value number6(double x) {
  if (!std::isfinite(x)) return json::Value();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%g", x);
  return json::Value::number_literal(buf);
}

}  // namespace

bool is_stats_file(const std::string& source) {
  return source.size() > 4 && source.compare(source.size() - 4, 4, ".npz") == 0;
}

std::string EvalResult::to_json() const {
  json::Value v = json::Value::object();
  v.set("features", json::Value::string(features));
  v.set("real", json::Value::string(real));
  v.set("fake", json::Value::string(fake));
  v.set("n_real", json::Value::integer(n_real));
  v.set("n_fake", json::Value::integer(n_fake));
  if (fid) v.set("fid", number6(*fid));
  if (kid) {
    v.set("kid", number6(kid->mean));
    v.set("kid_std", number6(kid->std));
    v.set("kid_subset_size", json::Value::integer(kid->subset_size));
  }
  if (pr) {
    v.set("precision", number6(pr->precision));
    v.set("recall", number6(pr->recall));
    v.set("pr_k", json::Value::integer(pr->k));
  }
  return json::write_spaced(v);
}

Evaluator::Evaluator(std::unique_ptr<FeatureNetwork> network, EvalOptions options)
    : network_(std::move(network)), options_(options) {
  if (!network_) throw std::invalid_argument("Evaluator: no feature network");
  if (options_.batch_size < 1) bad_input("--batch-size", "must be >= 1");
}

std::unique_ptr<Evaluator> Evaluator::for_run(const Config& config, c10::Device device) {
  const auto& t = config.train;
  const auto& m = config.model;
  // The reference's features are computed 256 images at a time and the samples' 250 (one
  // sampling batch), as the trainer always did.
  EvalOptions options;
  options.batch_size = 256;
  auto evaluator = std::make_unique<Evaluator>(load_feature_network(t.eval_features, {}, device), options);
  FeatureNetwork& net = evaluator->network();
  const int64_t dim = net.features(at::zeros({1, m.image_channels, m.image_height, m.image_width}, at::kByte)).size(1);
  const std::string& ref = t.eval_ref;
  if (is_stats_file(ref)) {
    evaluator->reference_from_stats(ref);
  } else {
    auto set = open_image_set(ref, {}, m.image_channels);
    if (set->height() != m.image_height || set->width() != m.image_width)
      throw std::invalid_argument("eval-ref '" + ref + "': images are " + std::to_string(set->height()) + "x" +
                                  std::to_string(set->width()) + ", the model's " + std::to_string(m.image_height) +
                                  "x" + std::to_string(m.image_width));
    evaluator->reference_from_images(*set);
  }
  const int64_t ref_dim = evaluator->reference().stats.dim();
  if (ref_dim != dim)
    throw std::invalid_argument("eval-ref '" + ref + "': " + std::to_string(ref_dim) + "-d statistics, but " +
                                net.describe() + " gives " + std::to_string(dim) + "-d features");
  evaluator->options_.batch_size = 250;
  return evaluator;
}

void Evaluator::reference_from_stats(const std::string& npz) {
  Reference r;
  r.stats = read_stats_npz(npz);
  r.description = "statistics '" + npz + "' (" + (r.stats.count ? std::to_string(r.stats.count) : "?") + " images" +
                  (r.stats.features.empty() ? "" : ", features: " + r.stats.features) + ")";
  reference_ = std::move(r);
}

void Evaluator::reference_from_images(ImageSet& images, const std::function<void(int64_t, int64_t)>& progress) {
  Reference r;
  r.features = features_of(images, progress);
  r.stats = compute_stats(r.features, network_->describe());
  r.description = images.describe();
  reference_ = std::move(r);
}

at::Tensor Evaluator::features_of(ImageSet& images, const std::function<void(int64_t, int64_t)>& progress) const {
  return compute_features(*network_, images, options_.batch_size, progress);
}

EvalResult Evaluator::compare(const at::Tensor& fake_features, const std::string& fake_description,
                              const std::string& reference_name) const {
  if (!has_reference()) throw std::logic_error("Evaluator::compare: no reference");
  EvalResult r;
  r.features = network_->describe();
  r.real = reference_.description;
  r.fake = fake_description;
  r.n_real = reference_.features.defined() ? reference_.features.size(0) : reference_.stats.count;
  r.n_fake = fake_features.size(0);
  const FeatureStats fake_stats = compute_stats(fake_features, network_->describe());
  if (reference_.stats.dim() != fake_stats.dim())
    bad_input(reference_name, "statistics are " + std::to_string(reference_.stats.dim()) +
                                  "-d but the features are " + std::to_string(fake_stats.dim()) +
                                  "-d (another feature network?)");
  if (options_.fid) r.fid = frechet_distance(reference_.stats, fake_stats);
  if (reference_.features.defined()) {
    if (options_.kid) r.kid = kernel_inception_distance(reference_.features, fake_features, options_.kid_options);
    if (options_.pr) r.pr = precision_recall(reference_.features, fake_features, options_.pr_k);
  }
  return r;
}

EvalResult Evaluator::compare(ImageSet& fake, const std::function<void(int64_t, int64_t)>& progress) const {
  return compare(features_of(fake, progress), fake.describe());
}

}  // namespace ddpm::eval
