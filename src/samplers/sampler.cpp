// SamplerConfig checks and the sample() entry point: picks the timesteps and the predictor.
#include "ddpm/samplers/sampler.hpp"

#include <ATen/TensorOperators.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "ddpm/util/errors.hpp"
#include "samplers/internal.hpp"
#include "util/enum_names.hpp"

namespace ddpm {
namespace {

[[noreturn]] void bad(const std::string& key, const std::string& what) { bad_input("sampler option " + key, what); }

std::string show(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The registry of predictors: a new sampler is one file with its Stepper plus one line here.
detail::Stepper make_stepper(SamplerKind kind, detail::SamplerRun& run, const std::vector<double>& kept) {
  switch (kind) {
    case SamplerKind::Ddpm: return detail::ancestral_stepper(run, kept);
    case SamplerKind::Ddim: return detail::ddim_stepper(run, run.config().eta);
    case SamplerKind::DpmSolver2M: return detail::dpmpp_2m_stepper(run);
    case SamplerKind::DpmSolver3M: return detail::dpmpp_3m_stepper(run, kept);
    case SamplerKind::DpmSolver2MSde: return detail::dpmpp_2m_sde_stepper(run);
    case SamplerKind::UniPC: return detail::unipc_stepper(run);
    case SamplerKind::Heun: return detail::heun_stepper(run, kept);
    case SamplerKind::Euler: return detail::ddim_stepper(run, 0.0);  // the same update (ddim.cpp)
    case SamplerKind::EulerAncestral: return detail::euler_ancestral_stepper(run);
    case SamplerKind::IPndm: return detail::ipndm_stepper(run);
  }
  throw std::invalid_argument("sampler: unknown kind");
}

// The kept timesteps, ascending (fractional with karras / logsnr), for the config's spacing.
std::vector<double> kept_timesteps(const NoiseSchedule& schedule, const SamplerConfig& config) {
  const int64_t steps = config.resolved_steps(schedule.num_timesteps());
  try {
    return sampling_timesteps(SigmaTable(schedule.alpha_bar64), steps, config.spacing, config.karras_rho);
  } catch (const std::invalid_argument& e) {
    bad("spacing", e.what());
  }
}

void check_steering(const Steering& s, int64_t n, int64_t C, int64_t H, int64_t W) {
  if (!(s.strength >= 0.0 && s.strength <= 1.0)) bad("strength", "must be in [0, 1], got " + show(s.strength));
  if (s.jump_length < 0) bad("jump-length", "must be >= 0, got " + std::to_string(s.jump_length));
  if (s.resample < 1) bad("resample", "must be >= 1, got " + std::to_string(s.resample));
  if (s.x_T.defined() && s.x_T.sizes() != at::IntArrayRef(std::vector<int64_t>{n, C, H, W}))
    bad("x_T", "expected noise of shape [" + std::to_string(n) + ", " + std::to_string(C) + ", " + std::to_string(H) +
                   ", " + std::to_string(W) + "], got " + c10::str(s.x_T.sizes()));
  if (s.strength < 1.0) {
    if (!s.init.defined()) bad("init", "SDEdit with strength < 1 needs init images");
    const std::vector<int64_t> want{n, C, H, W};
    if (s.init.sizes() != at::IntArrayRef(want))
      bad("init", "expected images of shape [" + std::to_string(n) + ", " + std::to_string(C) + ", " +
                      std::to_string(H) + ", " + std::to_string(W) + "], got " + c10::str(s.init.sizes()));
  }
}

}  // namespace

namespace {
// Canonical names in enum order, then k-diffusion's function names as aliases.
constexpr util::EnumName<SamplerKind> kSamplers[] = {
    {SamplerKind::Ddpm, "ddpm"},
    {SamplerKind::Ddim, "ddim"},
    {SamplerKind::DpmSolver2M, "dpm++2m"},
    {SamplerKind::DpmSolver3M, "dpm++3m"},
    {SamplerKind::DpmSolver2MSde, "dpm++2m-sde"},
    {SamplerKind::UniPC, "unipc"},
    {SamplerKind::Heun, "heun"},
    {SamplerKind::Euler, "euler"},
    {SamplerKind::EulerAncestral, "euler-a"},
    {SamplerKind::IPndm, "ipndm"},
    {SamplerKind::DpmSolver2M, "dpmpp_2m"},
    {SamplerKind::DpmSolver3M, "dpmpp_3m"},
    {SamplerKind::DpmSolver2MSde, "dpmpp_2m_sde"},
    {SamplerKind::EulerAncestral, "euler_ancestral"}};
constexpr util::EnumName<Variance> kVariances[] = {{Variance::FixedSmall, "fixed_small"},
                                                   {Variance::FixedLarge, "fixed_large"},
                                                   {Variance::FixedSmall, "fixed-small"},
                                                   {Variance::FixedLarge, "fixed-large"}};
}  // namespace

const std::vector<std::string>& sampler_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (size_t i = 0; i < std::size(kSamplers); ++i)
      if (util::detail::is_canonical(kSamplers, i)) out.emplace_back(kSamplers[i].name);
    return out;
  }();
  return names;
}

SamplerKind parse_sampler_kind(const std::string& text) { return util::parse_enum(kSamplers, text, "sampler"); }

std::string to_string(SamplerKind kind) { return util::enum_name(kSamplers, kind); }

int64_t sampler_nfe(SamplerKind kind, int64_t steps) {
  return kind == SamplerKind::Heun ? 2 * steps - 1 : steps;
}

Variance parse_variance(const std::string& text) { return util::parse_enum(kVariances, text, "variance"); }

std::string to_string(Variance variance) { return util::enum_name(kVariances, variance); }

void SamplerConfig::validate(int64_t T) const {
  if (T < 2) bad("timesteps", "the schedule needs at least 2 steps, got " + std::to_string(T));
  if (steps < 0 || steps > T)
    bad("steps", "must be in [0, " + std::to_string(T) + "] (0 = default; the schedule has " + std::to_string(T) +
                     " timesteps), got " + std::to_string(steps));
  if (!(eta >= 0.0 && eta <= 1.0)) bad("eta", "must be in [0, 1], got " + show(eta));
  if (!(dynamic_threshold_percentile > 0.0 && dynamic_threshold_percentile <= 1.0))
    bad("dynamic-threshold-percentile", "must be in (0, 1], got " + show(dynamic_threshold_percentile));
  if (corrector_steps < 1) bad("corrector-steps", "must be at least 1, got " + std::to_string(corrector_steps));
  if (!(corrector_snr > 0.0 && std::isfinite(corrector_snr)))
    bad("corrector-snr", "must be a positive number, got " + show(corrector_snr));
  if (!(karras_rho > 0.0 && karras_rho <= 1000.0)) bad("karras-rho", "must be in (0, 1000], got " + show(karras_rho));
  const int64_t max_order = kind == SamplerKind::IPndm ? 4 : 3;
  if (order < 0 || order > max_order)
    bad("order", "must be in [0, " + std::to_string(max_order) + "] for " + to_string(kind) + " (0 = default), got " +
                     std::to_string(order));
  if (!(s_churn >= 0.0 && std::isfinite(s_churn))) bad("s-churn", "must be a finite number >= 0, got " + show(s_churn));
  if (!(s_tmin >= 0.0 && s_tmin <= s_tmax)) bad("s-tmin", "must be in [0, s-tmax], got " + show(s_tmin));
  if (!(s_noise >= 0.0 && std::isfinite(s_noise))) bad("s-noise", "must be a finite number >= 0, got " + show(s_noise));
}

int64_t SamplerConfig::resolved_steps(int64_t T) const {
  if (steps > 0) return steps;
  if (kind == SamplerKind::Ddpm) return T;
  if (kind == SamplerKind::Ddim) return std::min<int64_t>(50, T);
  return std::min<int64_t>(20, T);
}

void SamplerConfig::validate(const NoiseSchedule& schedule) const {
  const int64_t T = schedule.num_timesteps();
  validate(T);
  if (prediction != Prediction::Epsilon) return;
  // ε-prediction cannot give x̂₀ = (x_t − √(1−ᾱ) ε̂)/√ᾱ where ᾱ = 0 (zero terminal SNR,
  // Lin et al. 2024 §3.2). Trailing spacing, and any spacing with steps = T, visits T−1.
  const SigmaTable table(schedule.alpha_bar64);
  for (double t : timesteps(schedule))
    if (table.alpha_bar(t) <= 0.0)
      bad("prediction", "epsilon cannot be sampled at timestep " + show(t) +
                            ", where alpha_bar = 0 (zero terminal SNR): epsilon carries no information about x0 "
                            "there; train with v or x0 prediction (--prediction v), or use a schedule without "
                            "--zero-terminal-snr (--spacing leading skips t = T-1 only with fewer steps than T)");
}

std::vector<int64_t> SamplerConfig::timesteps(int64_t T) const {
  auto kept = timestep_subset(T, resolved_steps(T), spacing);
  return {kept.rbegin(), kept.rend()};
}

std::vector<double> SamplerConfig::timesteps(const NoiseSchedule& schedule) const {
  const auto kept = kept_timesteps(schedule, *this);
  return {kept.rbegin(), kept.rend()};
}

at::Tensor dynamic_threshold(const at::Tensor& x0, double percentile) {
  const int64_t b = x0.size(0);
  // Per image: s = quantile of |x̂₀|, at least 1 so that values already in [−1, 1] are kept.
  auto s = x0.reshape({b, -1}).abs().quantile(percentile, /*dim=*/1, /*keepdim=*/true).clamp_min(1.0);
  std::vector<int64_t> shape(static_cast<size_t>(x0.dim()), 1);
  shape[0] = b;
  s = s.reshape(shape);
  return x0.minimum(s).maximum(-s) / s;
}

at::Tensor sample(const NoiseSchedule& schedule, const Denoiser& denoiser, const SamplerConfig& config, int64_t n,
                  int64_t channels, int64_t height, int64_t width, int64_t first_index, const ProgressFn& progress,
                  const StepFn& on_step, const Steering& steering) {
  const int64_t T = schedule.num_timesteps();
  config.validate(schedule);
  c10::NoGradGuard no_grad;  // sampling never needs a graph, whatever the denoiser's weights
  if (!denoiser) throw std::invalid_argument("sample: no denoiser given");
  if (n < 1) throw std::invalid_argument("sample: number of images must be at least 1, got " + std::to_string(n));
  if (channels < 1 || height < 1 || width < 1)
    throw std::invalid_argument("sample: image shape must be positive, got " + std::to_string(channels) + "x" +
                                std::to_string(height) + "x" + std::to_string(width));
  if (first_index < 0) throw std::invalid_argument("sample: first_index must be >= 0");

  // The kept timesteps, ascending; all T for plain ancestral sampling.
  const auto kept = kept_timesteps(schedule, config);
  check_steering(steering, n, channels, height, width);
  detail::SamplerRun run(schedule, denoiser, config, n, {channels, height, width}, first_index, kept, progress, on_step);
  const auto K = static_cast<int64_t>(kept.size());
  int64_t start = K - 1;
  at::Tensor x;
  if (steering.strength < 1.0) {
    const at::Tensor init = steering.init.to(schedule.device(), at::kFloat);
    if (steering.strength == 0.0) return init.clone();
    // SDEdit: the kept t whose t + 1 steps are nearest strength·T (ties: the smaller t).
    const double target = steering.strength * static_cast<double>(T);
    start = 0;
    for (int64_t k = 1; k < K; ++k)
      if (std::abs(static_cast<double>(kept[k] + 1) - target) < std::abs(static_cast<double>(kept[start] + 1) - target))
        start = k;
    const double ab = run.alpha_bar(kept[static_cast<size_t>(start)]);
    x = init * std::sqrt(ab) + run.noise() * std::sqrt(1.0 - ab);
  } else {
    x = steering.x_T.defined() ? steering.x_T.to(schedule.device(), at::kFloat) : run.initial();
  }
  return detail::run_predictor(run, kept, x, start, [&] { return make_stepper(config.kind, run, kept); }, steering);
}

}  // namespace ddpm
