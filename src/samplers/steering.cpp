// Guidance and steering built on sample()'s one loop (see steering.hpp for the papers).
#include "ddpm/samplers/steering.hpp"

#include <ATen/ops/arange.h>
#include <ATen/ops/avg_pool2d.h>
#include <ATen/ops/remainder.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/where.h>
#include <ATen/TensorOperators.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/util/errors.hpp"

namespace ddpm {
namespace {

std::string shape_string(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// ᾱ at any visited t (fractional with karras / logsnr spacing; t = −1: 1).
std::shared_ptr<const SigmaTable> sigma_table(const NoiseSchedule& schedule) {
  return std::make_shared<const SigmaTable>(schedule.alpha_bar64);
}

at::Tensor labels_for(const at::Tensor& labels, const at::Tensor& x) {
  if (labels.dim() != 1 || labels.size(0) != x.size(0))
    throw std::invalid_argument("guidance: " + std::to_string(labels.numel()) + " labels for a batch of " +
                                std::to_string(x.size(0)) + " images");
  return labels.to(x.device(), at::kLong);
}

void check_image(const char* option, const at::Tensor& x) {
  if (!x.defined() || x.dim() != 4) bad_input(option, "expected images [n, C, H, W]");
}

}  // namespace

Denoiser with_labels(ConditionalDenoiser model, at::Tensor labels) {
  return [model = std::move(model), labels = std::move(labels)](const at::Tensor& x, const at::Tensor& t) {
    return model(x, t, labels_for(labels, x));
  };
}

Denoiser classifier_free_guidance(ConditionalDenoiser model, at::Tensor labels, double w) {
  if (!(w >= 0.0 && std::isfinite(w))) bad_input("guidance", "must be a finite number >= 0");
  return [model = std::move(model), labels = std::move(labels), w](const at::Tensor& x, const at::Tensor& t) {
    const at::Tensor c = labels_for(labels, x);
    const int64_t B = x.size(0);
    // One forward of [conditional; unconditional]: twice the batch, half the calls.
    const at::Tensor out = model(at::cat({x, x}, 0), at::cat({t, t}, 0), at::cat({c, at::full_like(c, kNoClass)}, 0));
    return out.narrow(0, 0, B) * (1.0 + w) - out.narrow(0, B, B) * w;
  };
}

Denoiser classifier_free_guidance(ConditionalDenoiser model, at::Tensor labels, double w,
                                  const NoiseSchedule& schedule, double sigma_low, double sigma_high) {
  if (!(sigma_low >= 0.0 && sigma_low < sigma_high))
    bad_input("guidance interval", "needs 0 <= low < high (got " + std::to_string(sigma_low) + ", " +
                                       std::to_string(sigma_high) + ")");
  // Guided at step t when σ_t in (low, high] (σ_t = √((1 − ᾱ_t)/ᾱ_t)).
  auto table = sigma_table(schedule);
  const auto T = static_cast<double>(table->num_timesteps());
  Denoiser cfg = classifier_free_guidance(model, labels, w);
  Denoiser plain = with_labels(std::move(model), std::move(labels));
  return [cfg = std::move(cfg), plain = std::move(plain), table, T, sigma_low, sigma_high](const at::Tensor& x,
                                                                                         const at::Tensor& t) {
    // The samplers step a batch at one t; mixed batches take the guided pass and keep it per image.
    const at::Tensor tc = t.to(at::kCPU, at::kDouble).contiguous();
    const double* ts = tc.data_ptr<double>();
    at::Tensor m = at::empty({tc.numel()}, at::kBool);
    bool* mp = m.data_ptr<bool>();
    int64_t n_guided = 0;
    for (int64_t i = 0; i < tc.numel(); ++i) {
      bool inside = false;
      if (ts[i] >= 0.0 && ts[i] <= T - 1.0) {
        const double ab = table->alpha_bar(ts[i]);  // the table's value on integer t
        const double sigma = std::sqrt((1.0 - ab) / ab);
        inside = sigma > sigma_low && sigma <= sigma_high;
      }
      mp[i] = inside;
      n_guided += mp[i];
    }
    if (n_guided == 0) return plain(x, t);
    const at::Tensor out = cfg(x, t);
    if (n_guided == tc.numel()) return out;
    return at::where(m.to(x.device()).view({-1, 1, 1, 1}), out, plain(x, t));
  };
}

std::string Guidance::describe() const {
  std::ostringstream s;
  s << "guidance " << weight;
  if (limited()) s << " for σ in (" << sigma_low << ", " << sigma_high << "]";
  return s.str();
}

void Guidance::validate() const {
  if (!(weight >= 0.0 && weight <= 1000.0)) bad_input("--guidance", "must be in [0, 1000]");
  if (!(sigma_low >= 0.0 && sigma_low < sigma_high))
    bad_input("--guidance-interval", "expected LOW,HIGH with 0 <= LOW < HIGH");
}

Denoiser guided(ConditionalDenoiser model, at::Tensor labels, const Guidance& g, const NoiseSchedule& schedule) {
  g.validate();
  if (g.weight == 0.0) return with_labels(std::move(model), std::move(labels));
  if (!g.limited()) return classifier_free_guidance(std::move(model), std::move(labels), g.weight);
  return classifier_free_guidance(std::move(model), std::move(labels), g.weight, schedule, g.sigma_low, g.sigma_high);
}

at::Tensor balanced_labels(int64_t num_classes, int64_t first, int64_t count) {
  if (num_classes < 1) throw std::invalid_argument("balanced labels: num_classes must be >= 1");
  return at::arange(first, first + count, at::kLong).remainder(num_classes);
}

Denoiser balanced_denoiser(ConditionalDenoiser model, int64_t num_classes, int64_t first, int64_t count,
                           const Guidance& g, const NoiseSchedule& schedule) {
  if (num_classes < 0) throw std::invalid_argument("balanced denoiser: num_classes must be >= 0");
  if (num_classes == 0)
    return [model = std::move(model)](const at::Tensor& x, const at::Tensor& t) { return model(x, t, at::Tensor()); };
  return guided(std::move(model), balanced_labels(num_classes, first, count), g, schedule);
}

Steering sdedit(at::Tensor init, double strength) {
  check_image("--init", init);
  if (!(strength >= 0.0 && strength <= 1.0)) bad_input("--strength", "must be in [0, 1]");
  Steering s;
  s.init = std::move(init);
  s.strength = strength;
  return s;
}

Steering repaint(const NoiseSchedule& schedule, at::Tensor init, at::Tensor keep, int64_t jump_length,
                 int64_t resample) {
  check_image("--init", init);
  check_image("--mask", keep);
  for (int64_t d : {0, 1})
    if (keep.size(d) != 1 && keep.size(d) != init.size(d))
      bad_input("--mask", "shape " + shape_string(keep.sizes()) + " does not fit the images " + shape_string(init.sizes()));
  if (keep.size(2) != init.size(2) || keep.size(3) != init.size(3))
    bad_input("--mask", "is " + std::to_string(keep.size(3)) + "x" + std::to_string(keep.size(2)) + " but --init is " +
                            std::to_string(init.size(3)) + "x" + std::to_string(init.size(2)));
  Steering s;
  s.jump_length = jump_length;
  s.resample = resample;
  auto table = sigma_table(schedule);
  const at::Tensor x0 = init.to(schedule.device(), at::kFloat);
  const at::Tensor m = keep.to(schedule.device(), at::kBool);
  s.hook = [table, x0, m](double t, const at::Tensor& x, const NoiseFn& noise) {
    if (t < 0) return at::where(m, x0, x);  // the end: the known pixels are the init's, exactly
    const double a = table->alpha_bar(t);
    return at::where(m, x0 * std::sqrt(a) + noise() * std::sqrt(1.0 - a), x);
  };
  return s;
}

at::Tensor low_pass(const at::Tensor& x, int64_t factor) {
  if (factor < 1 || x.dim() != 4 || x.size(2) % factor || x.size(3) % factor)
    throw std::invalid_argument("low_pass: image size " + shape_string(x.sizes()) + " does not divide by " +
                                std::to_string(factor));
  if (factor == 1) return x;
  const at::Tensor mean = at::avg_pool2d(x, {factor, factor});
  return mean.repeat_interleave(factor, 2).repeat_interleave(factor, 3);
}

Steering ilvr(const NoiseSchedule& schedule, at::Tensor lowres, int64_t factor) {
  check_image("--upscale", lowres);
  if (factor < 1) bad_input("--upscale-factor", "must be >= 1");
  auto table = sigma_table(schedule);
  const at::Tensor y = lowres.to(schedule.device(), at::kFloat).repeat_interleave(factor, 2).repeat_interleave(factor, 3);
  Steering s;
  s.hook = [table, y, factor](double t, const at::Tensor& x, const NoiseFn& noise) {
    if (x.sizes() != y.sizes())
      bad_input("--upscale", "the low-resolution images x" + std::to_string(factor) + " are " +
                                 shape_string(y.sizes()) + ", the samples " + shape_string(x.sizes()));
    const double a = table->alpha_bar(t);  // 1 at t = −1
    const at::Tensor y_t = t < 0 ? y : y * std::sqrt(a) + noise() * std::sqrt(1.0 - a);
    return x - low_pass(x, factor) + low_pass(y_t, factor);
  };
  return s;
}

}  // namespace ddpm
