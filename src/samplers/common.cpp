// One sampling run: tables in float64, per-image noise moved to the device, the denoiser
// call with the conversion of its output to (x̂₀, ε̂), and progress reporting.
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/scalar_tensor.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "samplers/internal.hpp"

namespace ddpm::detail {
namespace {

std::string shape_string(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

SamplerRun::SamplerRun(const NoiseSchedule& schedule, const Denoiser& denoiser, const SamplerConfig& config,
                       int64_t n, std::vector<int64_t> image_shape, int64_t first_index, std::vector<double> kept,
                       const ProgressFn& progress, const StepFn& on_step)
    : schedule_(schedule),
      denoiser_(denoiser),
      config_(config),
      n_(n),
      noise_(config.seed, first_index, n, image_shape),
      table_(schedule.alpha_bar64),
      kept_(std::move(kept)),
      progress_(progress),
      on_step_(on_step) {
  shape_ = {n};
  shape_.insert(shape_.end(), image_shape.begin(), image_shape.end());
  alpha_ = to_double_vector(schedule.beta64);
  for (auto& a : alpha_) a = 1.0 - a;
}

double SamplerRun::alpha(double t) const {
  const auto it = std::lower_bound(kept_.begin(), kept_.end(), t);
  if (it == kept_.end() || *it != t) throw std::logic_error("sampler: timestep " + std::to_string(t) + " is not kept");
  const double before = it == kept_.begin() ? -1.0 : *(it - 1);
  if (before == t - 1 && t == std::floor(t)) return alpha_[static_cast<size_t>(t)];  // consecutive: the original step
  return alpha_bar(t) / alpha_bar(before);                      // 1 − β' of the respaced process
}

at::Tensor SamplerRun::noise() { return noise_.next().to(schedule_.device()); }

SamplerRun::Estimate SamplerRun::estimate(const at::Tensor& x, double t, bool process) {
  // int64 on table points (what every model was trained on), float64 between them.
  const at::Tensor tt = t == std::floor(t)
                            ? at::full({n_}, static_cast<int64_t>(t), at::TensorOptions().dtype(at::kLong).device(x.device()))
                            : at::full({n_}, t, at::TensorOptions().dtype(at::kDouble).device(x.device()));
  at::Tensor out = denoiser_(x, tt);
  if (!out.defined() || out.sizes() != x.sizes())
    throw std::runtime_error("sampler: the denoiser returned shape " +
                             (out.defined() ? shape_string(out.sizes()) : std::string("(undefined)")) +
                             " for input " + shape_string(x.sizes()));
  if (out.scalar_type() != x.scalar_type() || out.device() != x.device()) out = out.to(x.options());

  // ᾱ as a float64 scalar: the conversions take their coefficients from it in float64.
  const at::Tensor ab = at::scalar_tensor(alpha_bar(t), x.options().dtype(at::kDouble));
  Estimate e;
  e.x0 = predict_x0(config_.prediction, x, out, ab);
  if (process && (config_.dynamic_threshold || config_.clip_x0)) {
    e.x0 = config_.dynamic_threshold ? dynamic_threshold(e.x0, config_.dynamic_threshold_percentile)
                                     : e.x0.clamp(-1.0, 1.0);
    // ε̂ consistent with the processed x̂₀ (as diffusers' DDIM does after clipping).
    e.eps = eps_from_x0(x, e.x0, ab);
  } else {
    e.eps = predict_eps(config_.prediction, x, out, ab);
  }
  return e;
}

bool SamplerRun::report(int64_t step, int64_t total, const at::Tensor& x) {
  if (on_step_) on_step_(step, total, x);
  if (progress_) return progress_(step, total);
  return true;
}

std::vector<double> to_double_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kDouble).contiguous();
  const double* p = c.data_ptr<double>();
  return {p, p + c.numel()};
}

at::Tensor per_image_norm(const at::Tensor& x) {
  const int64_t b = x.size(0);
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = b;
  if (x.device().is_cpu()) {
    const at::Tensor c = x.to(at::kFloat).contiguous();
    const int64_t per_image = b ? c.numel() / b : 0;
    const float* p = c.data_ptr<float>();
    at::Tensor out = at::empty(shape, x.options());
    float* o = out.data_ptr<float>();
    for (int64_t k = 0; k < b; ++k) {
      double sum = 0.0;
      for (int64_t j = 0; j < per_image; ++j) sum += double(p[k * per_image + j]) * double(p[k * per_image + j]);
      o[k] = static_cast<float>(std::sqrt(sum));
    }
    return out;
  }
  return x.reshape({b, -1}).norm(2, {1}, /*keepdim=*/true).reshape(shape);
}

std::vector<int64_t> visit_path(int64_t start, int64_t jump_length, int64_t resample) {
  std::vector<int64_t> path;
  const bool jumps = jump_length > 0 && resample > 1;
  std::vector<int64_t> done(static_cast<size_t>(std::max<int64_t>(start + 1, 0)), 0);
  for (int64_t s = start; s >= 0;) {
    path.push_back(--s);
    // As RePaint's schedule: at every multiple of the jump length (with room above), back up.
    if (jumps && s >= 0 && s % jump_length == 0 && s + jump_length <= start &&
        done[static_cast<size_t>(s)] < resample - 1) {
      ++done[static_cast<size_t>(s)];
      s += jump_length;
      path.push_back(s);
    }
  }
  return path;
}

at::Tensor run_predictor(SamplerRun& run, const std::vector<double>& kept, at::Tensor x, int64_t start,
                         const StepperFactory& make_stepper, const Steering& steering) {
  const std::vector<int64_t> path = visit_path(start, steering.jump_length, steering.resample);
  const auto total = static_cast<int64_t>(path.size());
  const NoiseFn noise = [&run] { return run.noise(); };
  Stepper step = make_stepper();
  at::Tensor x0 = x;  // x̂₀ of the latest estimate (returned when progress stops the run)
  int64_t s = start;
  for (int64_t i = 0; i < total; ++i) {
    const int64_t next = path[static_cast<size_t>(i)];
    if (next < s) {
      double t = kept[static_cast<size_t>(s)];
      if (step.perturb) t = step.perturb(s, t, x);
      const SamplerRun::Estimate e = run.estimate(x, t);
      x0 = e.x0;
      if (s == 0) {
        x = e.x0;  // ᾱ = 1 after the last kept step: a first-order step there gives x̂₀
      } else {
        const double t_prev = kept[static_cast<size_t>(s - 1)];
        x = step.step(s, t, t_prev, e, x);
        run.correct(x, t_prev);
      }
      if (steering.hook) x = steering.hook(next >= 0 ? kept[static_cast<size_t>(next)] : -1.0, x, noise);
    } else {
      // Up: x_{t'} ~ q(x_{t'} | x_t) = N(√(ᾱ_{t'}/ᾱ_t) x_t, (1 − ᾱ_{t'}/ᾱ_t) I).
      const double ratio = run.alpha_bar(kept[static_cast<size_t>(next)]) / run.alpha_bar(kept[static_cast<size_t>(s)]);
      x = x * std::sqrt(ratio) + run.noise() * std::sqrt(std::max(0.0, 1.0 - ratio));
      step = make_stepper();
    }
    s = next;
    if (!run.report(i + 1, total, x)) return x0;
  }
  return x;
}

double half_logsnr(double ab) {
  if (ab <= 0.0) return -std::numeric_limits<double>::infinity();
  return 0.5 * (std::log(ab) - std::log1p(-ab));
}

}  // namespace ddpm::detail
