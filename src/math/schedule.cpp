// Noise schedules and their derived coefficients.
// Definitions follow tests/data/schedules.json's README (shared/reference/README.md):
// T steps, i = 0..T-1, ᾱ_i = Π_{j≤i} (1 − β_j), ᾱ_{−1} = 1.
// Everything is computed in float64 on the CPU, then cast once to float32 on the device.
#include "ddpm/math/schedule.hpp"
#include "ddpm/util/errors.hpp"
#include "util/enum_names.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace ddpm {
namespace {

constexpr double kMaxBeta = 0.999;  // DDPM-improved clipping of continuous schedules (Nichol & Dhariwal 2021)
constexpr double kPi = 3.14159265358979323846;

std::string num(double v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  return os.str();
}

[[noreturn]] void bad(const std::string& message) { bad_input("schedule", message); }

void require_finite(const char* key, double v) {
  if (!std::isfinite(v)) bad(std::string(key) + " must be finite (got " + num(v) + ")");
}

double logsnr_max_of(const ScheduleConfig& c) {
  if (c.logsnr_max) return *c.logsnr_max;
  return c.kind == "cosine-logsnr" ? 15.0 : 10.0;
}
double logsnr_min_of(const ScheduleConfig& c) {
  if (c.logsnr_min) return *c.logsnr_min;
  return c.kind == "cosine-logsnr" ? -15.0 : -10.0;
}

// log σ(x) = −ln(1 + e^{−x}), stable for both signs.
double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }
double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

// The float64 tables before derivation of the posterior: ᾱ and 1 − ᾱ kept separately so
// that 1 − ᾱ keeps full relative precision where ᾱ ≈ 1 (small i).
struct Tables {
  std::vector<double> beta, alpha_bar, one_minus_alpha_bar;
};

// β_i = min(1 − γ((i+1)/T) / γ(i/T), 0.999) for a continuous schedule given by ln γ(τ).
// Normalised kinds (γ(0) = 1) start from γ(0); the kinds defined by their log SNR keep
// ᾱ_i = γ((i+1)/T) = σ(λ((i+1)/T)) exactly, so they start from ᾱ_{−1} = 1 instead:
// dividing by γ(0) = σ(λmax) < 1 would push λ of the first steps above λmax.
enum class Start { Gamma0, One };
template <class LogGamma>
std::vector<double> betas_from_log_gamma(int64_t T, Start start, LogGamma log_gamma) {
  std::vector<double> beta(T);
  double prev = start == Start::Gamma0 ? log_gamma(0.0) : 0.0;
  for (int64_t i = 0; i < T; ++i) {
    const double next = log_gamma(static_cast<double>(i + 1) / static_cast<double>(T));
    // 1 − γ₁/γ₀ = −expm1(ln γ₁ − ln γ₀); exact where the ratio is close to 1.
    const double b = std::isfinite(next) ? -std::expm1(next - prev) : 1.0;
    beta[i] = std::min(b, kMaxBeta);
    prev = next;
  }
  return beta;
}

std::vector<double> make_betas(const ScheduleConfig& c) {
  const int64_t T = c.timesteps;
  const double Tm1 = static_cast<double>(T - 1);
  std::vector<double> beta(T);
  if (c.kind == "linear") {
    // β_i = β₀ + (β₁ − β₀)·i/(T−1)   (DDPM §4)
    for (int64_t i = 0; i < T; ++i) beta[i] = c.beta_start + (c.beta_end - c.beta_start) * (i / Tm1);
  } else if (c.kind == "quadratic") {
    // β_i = (√β₀ + (√β₁ − √β₀)·i/(T−1))²
    const double a = std::sqrt(c.beta_start), b = std::sqrt(c.beta_end);
    for (int64_t i = 0; i < T; ++i) {
      const double r = a + (b - a) * (i / Tm1);
      beta[i] = r * r;
    }
  } else if (c.kind == "cosine") {
    // γ(τ) = f(τ)/f(0), f(τ) = cos²((τ+s)/(1+s)·π/2)   (Nichol & Dhariwal 2021, eq. 17)
    const double s = c.cosine_s;
    beta = betas_from_log_gamma(T, Start::Gamma0, [s](double tau) {
      const double f = std::cos((tau + s) / (1.0 + s) * kPi / 2.0);
      return 2.0 * std::log(std::abs(f));  // f(0) cancels in the ratio
    });
  } else if (c.kind == "sigmoid") {
    // γ(τ) = (σ(e/k) − σ((τ(e−s)+s)/k)) / (σ(e/k) − σ(s/k))   (Chen 2023, Algorithm 1)
    // 1 − γ(τ₁)/γ(τ₀) = (σ(x₁) − σ(x₀)) / (σ(e/k) − σ(x₀)) with x = (τ(e−s)+s)/k; this
    // form has no cancellation of nearly equal γ's.
    const double s = c.sigmoid_start, e = c.sigmoid_end, k = c.sigmoid_tau;
    const double top = sigmoid(e / k);
    auto x = [&](int64_t i) { return (static_cast<double>(i) / static_cast<double>(T) * (e - s) + s) / k; };
    for (int64_t i = 0; i < T; ++i) {
      const double s0 = sigmoid(x(i)), s1 = sigmoid(x(i + 1));
      beta[i] = std::min((s1 - s0) / (top - s0), kMaxBeta);
    }
  } else if (c.kind == "cosine-logsnr") {
    // λ(τ) = −2 ln tan(a + τ(b − a)) + shift, γ = σ(λ),
    // a = atan(e^{−λmax/2}), b = atan(e^{−λmin/2})   (Kingma et al. 2023; Hoogeboom et al. 2023)
    const double a = std::atan(std::exp(-logsnr_max_of(c) / 2.0));
    const double b = std::atan(std::exp(-logsnr_min_of(c) / 2.0));
    const double shift = c.logsnr_shift;
    beta = betas_from_log_gamma(T, Start::One, [=](double tau) {
      return log_sigmoid(-2.0 * std::log(std::tan(a + tau * (b - a))) + shift);
    });
  } else if (c.kind == "sigmoid-logsnr") {
    // λ(τ) = λmax + τ(λmin − λmax), γ = σ(λ)   (linear in log SNR)
    const double hi = logsnr_max_of(c), lo = logsnr_min_of(c);
    beta = betas_from_log_gamma(T, Start::One, [=](double tau) { return log_sigmoid(hi + tau * (lo - hi)); });
  } else {
    bad("unknown kind '" + c.kind + "'");
  }
  return beta;
}

Tables make_tables(const ScheduleConfig& c) {
  const int64_t T = c.timesteps;
  Tables tb;
  tb.beta = make_betas(c);
  tb.alpha_bar.resize(T);
  tb.one_minus_alpha_bar.resize(T);
  // ᾱ_i = Π_{j≤i} (1 − β_j) = exp(Σ ln(1 − β_j)); 1 − ᾱ_i = −expm1(Σ ln(1 − β_j)).
  double log_ab = 0.0;
  for (int64_t i = 0; i < T; ++i) {
    log_ab += std::log1p(-tb.beta[i]);
    tb.alpha_bar[i] = std::exp(log_ab);
    tb.one_minus_alpha_bar[i] = -std::expm1(log_ab);
  }
  bool recompute_beta = false;
  if (c.input_scale != 1.0) {
    // Input scaling (Chen 2023): x_t = (b√ᾱ x₀ + √(1−ᾱ) ε)/√(b²ᾱ + 1 − ᾱ) is the unscaled
    // process with ᾱ' = b²ᾱ / (b²ᾱ + 1 − ᾱ), i.e. log SNR shifted by 2 ln b.
    const double b2 = c.input_scale * c.input_scale;
    for (int64_t i = 0; i < T; ++i) {
      const double den = b2 * tb.alpha_bar[i] + tb.one_minus_alpha_bar[i];
      tb.alpha_bar[i] = b2 * tb.alpha_bar[i] / den;
      tb.one_minus_alpha_bar[i] = tb.one_minus_alpha_bar[i] / den;
    }
    recompute_beta = true;
  }
  if (c.zero_terminal_snr) {
    // Zero terminal SNR (Lin et al. 2024, Algorithm 1): shift √ᾱ so that √ᾱ_{T−1} = 0 and
    // rescale so that √ᾱ_0 is unchanged: s ← (s − s_{T−1})·s_0/(s_0 − s_{T−1}), ᾱ = s².
    const double s0 = std::sqrt(tb.alpha_bar[0]), sl = std::sqrt(tb.alpha_bar[T - 1]);
    const double scale = s0 / (s0 - sl);
    for (int64_t i = 0; i < T; ++i) {
      const double s = (std::sqrt(tb.alpha_bar[i]) - sl) * scale;
      tb.alpha_bar[i] = s * s;
      // i = 0 keeps ᾱ_0 (up to rounding), so keep its precise 1 − ᾱ_0.
      if (i > 0) tb.one_minus_alpha_bar[i] = 1.0 - s * s;
    }
    tb.alpha_bar[T - 1] = 0.0;  // exactly, whatever the rounding above
    tb.one_minus_alpha_bar[T - 1] = 1.0;
    recompute_beta = true;
  }
  if (recompute_beta) {
    // β_i = 1 − ᾱ_i/ᾱ_{i−1}, β_0 = 1 − ᾱ_0.
    tb.beta[0] = tb.one_minus_alpha_bar[0];
    for (int64_t i = 1; i < T; ++i) tb.beta[i] = 1.0 - tb.alpha_bar[i] / tb.alpha_bar[i - 1];
  }
  return tb;
}

// Parameters a kind depends on, to name them when the result is degenerate.
std::string params_of(const std::string& kind) {
  if (kind == "linear" || kind == "quadratic") return "beta-start/beta-end";
  if (kind == "cosine") return "cosine-s";
  if (kind == "sigmoid") return "sigmoid-start/sigmoid-end/sigmoid-tau";
  if (kind == "cosine-logsnr") return "logsnr-max/logsnr-min/logsnr-shift";
  return "logsnr-max/logsnr-min";
}

at::Tensor to_tensor64(const std::vector<double>& v) {
  return at::tensor(at::ArrayRef<double>(v), at::TensorOptions().dtype(at::kDouble));
}

}  // namespace

void ScheduleConfig::validate() const {
  static const char* kinds[] = {"linear", "quadratic", "cosine", "sigmoid", "cosine-logsnr", "sigmoid-logsnr"};
  if (std::find(std::begin(kinds), std::end(kinds), kind) == std::end(kinds))
    bad("unknown kind '" + kind +
        "' for schedule (expected linear, quadratic, cosine, sigmoid, cosine-logsnr or sigmoid-logsnr)");
  if (timesteps < 2) bad("timesteps must be at least 2 (got " + std::to_string(timesteps) + ")");
  // The tables are O(T) doubles; bound T before they are allocated (1e9 took 24 GB).
  if (timesteps > 100000) bad("timesteps must be at most 100000 (got " + std::to_string(timesteps) + ")");
  require_finite("input-scale", input_scale);
  if (input_scale <= 0) bad("input-scale must be > 0 (got " + num(input_scale) + ")");
  if (kind == "linear" || kind == "quadratic") {
    require_finite("beta-start", beta_start);
    require_finite("beta-end", beta_end);
    if (beta_start <= 0 || beta_start >= 1) bad("beta-start must be in (0, 1) (got " + num(beta_start) + ")");
    if (beta_end <= 0 || beta_end >= 1) bad("beta-end must be in (0, 1) (got " + num(beta_end) + ")");
    if (beta_start >= beta_end)
      bad("beta-start (" + num(beta_start) + ") must be less than beta-end (" + num(beta_end) + ")");
  } else if (kind == "cosine") {
    require_finite("cosine-s", cosine_s);
    if (cosine_s < 0) bad("cosine-s must be >= 0 (got " + num(cosine_s) + ")");
  } else if (kind == "sigmoid") {
    require_finite("sigmoid-start", sigmoid_start);
    require_finite("sigmoid-end", sigmoid_end);
    require_finite("sigmoid-tau", sigmoid_tau);
    if (sigmoid_tau <= 0) bad("sigmoid-tau must be > 0 (got " + num(sigmoid_tau) + ")");
    if (sigmoid_start >= sigmoid_end)
      bad("sigmoid-start (" + num(sigmoid_start) + ") must be less than sigmoid-end (" + num(sigmoid_end) + ")");
  } else {  // cosine-logsnr, sigmoid-logsnr
    const double hi = logsnr_max_of(*this), lo = logsnr_min_of(*this);
    require_finite("logsnr-max", hi);
    require_finite("logsnr-min", lo);
    if (hi <= lo) bad("logsnr-max (" + num(hi) + ") must be greater than logsnr-min (" + num(lo) + ")");
    if (kind == "cosine-logsnr") require_finite("logsnr-shift", logsnr_shift);
  }
}

NoiseSchedule::NoiseSchedule(const ScheduleConfig& config, c10::Device device) : config_(config), device_(device) {
  config_.validate();
  const int64_t T = config_.timesteps;
  const Tables tb = make_tables(config_);

  // The parameters are valid but may still be degenerate in float64 (e.g. logsnr-max so large
  // that ᾱ_0 rounds to 1, or β₀ so small that ᾱ stops decreasing).
  for (int64_t i = 0; i < T; ++i) {
    const double b = tb.beta[i];
    const bool last_zero = config_.zero_terminal_snr && i == T - 1;
    if (!(b > 0) || !(b < 1 || (last_zero && b <= 1)) || !(tb.one_minus_alpha_bar[i] > 0) ||
        (i > 0 && !(tb.alpha_bar[i] < tb.alpha_bar[i - 1])))
      bad("'" + config_.kind + "' with these " + params_of(config_.kind) + ", timesteps and input-scale gives β_" +
          std::to_string(i) + " = " + num(b) + ", ᾱ_" + std::to_string(i) + " = " + num(tb.alpha_bar[i]) +
          " in float64; ᾱ must decrease strictly with β in (0, 1)");
  }

  std::vector<double> post_var(T), coef_x0(T), coef_xt(T), lsnr(T);
  for (int64_t i = 0; i < T; ++i) {
    const double ab = tb.alpha_bar[i], om = tb.one_minus_alpha_bar[i];
    const double ab_prev = i > 0 ? tb.alpha_bar[i - 1] : 1.0;
    const double om_prev = i > 0 ? tb.one_minus_alpha_bar[i - 1] : 0.0;
    const PosteriorStep p = posterior_step(tb.beta[i], ab_prev, om, om_prev);
    post_var[i] = p.variance;
    coef_x0[i] = p.coef_x0;
    coef_xt[i] = p.coef_xt;
    // λ_i = ln(ᾱ_i / (1 − ᾱ_i)); −inf where ᾱ_i = 0 (zero terminal SNR).
    lsnr[i] = ab > 0 ? std::log(ab) - std::log(om) : -std::numeric_limits<double>::infinity();
  }

  beta64 = to_tensor64(tb.beta);
  alpha_bar64 = to_tensor64(tb.alpha_bar);
  posterior_variance64 = to_tensor64(post_var);
  posterior_mean_coef_x064 = to_tensor64(coef_x0);
  posterior_mean_coef_xt64 = to_tensor64(coef_xt);
  logsnr64 = to_tensor64(lsnr);

  std::vector<double> alpha(T), ab_prev(T), sqrt_ab(T), sqrt_om(T), post_logvar(T);
  for (int64_t i = 0; i < T; ++i) {
    alpha[i] = 1.0 - tb.beta[i];                          // α_i = 1 − β_i
    ab_prev[i] = i > 0 ? tb.alpha_bar[i - 1] : 1.0;       // ᾱ_{i−1}, ᾱ_{−1} = 1
    sqrt_ab[i] = std::sqrt(tb.alpha_bar[i]);              // √ᾱ_i
    sqrt_om[i] = std::sqrt(tb.one_minus_alpha_bar[i]);    // √(1 − ᾱ_i)
    // ln β̃_i with β̃_0 (= 0) replaced by β̃_1, as in DDPM's reference code: the i = 0 step
    // adds no noise, and ln 0 would poison the variance-learning losses.
    post_logvar[i] = std::log(i > 0 ? post_var[i] : post_var[std::min<int64_t>(1, T - 1)]);
  }

  auto f32 = [&](const std::vector<double>& v) { return to_tensor64(v).to(at::kFloat).to(device_); };
  beta = f32(tb.beta);
  this->alpha = f32(alpha);
  alpha_bar = f32(tb.alpha_bar);
  alpha_bar_prev = f32(ab_prev);
  sqrt_alpha_bar = f32(sqrt_ab);
  sqrt_one_minus_alpha_bar = f32(sqrt_om);
  logsnr = f32(lsnr);
  posterior_variance = f32(post_var);
  posterior_log_variance_clipped = f32(post_logvar);
  posterior_mean_coef_x0 = f32(coef_x0);
  posterior_mean_coef_xt = f32(coef_xt);
}

NoiseSchedule NoiseSchedule::to(c10::Device device) const {
  NoiseSchedule s = *this;  // float64 tables stay on the CPU (shared, read-only)
  s.device_ = device;
  for (at::Tensor* t : {&s.beta, &s.alpha, &s.alpha_bar, &s.alpha_bar_prev, &s.sqrt_alpha_bar,
                        &s.sqrt_one_minus_alpha_bar, &s.logsnr, &s.posterior_variance,
                        &s.posterior_log_variance_clipped, &s.posterior_mean_coef_x0, &s.posterior_mean_coef_xt})
    *t = t->to(device);
  return s;
}

at::Tensor NoiseSchedule::extract(const at::Tensor& table, const at::Tensor& t, int64_t ndim) {
  if (t.dim() != 1) throw std::invalid_argument("extract: t must be a 1-D index tensor, got " + std::to_string(t.dim()) + " dims");
  if (ndim < 1) throw std::invalid_argument("extract: ndim must be >= 1");
  at::Tensor out = table.index_select(0, t.to(table.device(), at::kLong));
  std::vector<int64_t> shape(ndim, 1);
  shape[0] = t.size(0);
  return out.reshape(shape);
}

namespace {
constexpr util::EnumName<Spacing> kSpacings[] = {{Spacing::Leading, "leading"},
                                                 {Spacing::Trailing, "trailing"},
                                                 {Spacing::Linspace, "linspace"},
                                                 {Spacing::Karras, "karras"},
                                                 {Spacing::LogSnr, "logsnr"}};
}  // namespace

const std::vector<std::string>& spacing_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& row : kSpacings) out.emplace_back(row.name);
    return out;
  }();
  return names;
}

Spacing parse_spacing(const std::string& text) { return util::parse_enum(kSpacings, text, "spacing"); }

std::string to_string(Spacing spacing) { return util::enum_name(kSpacings, spacing); }

namespace {
// round(num/den) for num, den ≥ 0, ties to even (numpy's rounding), in exact integer arithmetic.
int64_t round_div(int64_t num, int64_t den) {
  int64_t q = num / den, r = num % den;
  if (2 * r > den || (2 * r == den && (q % 2) != 0)) ++q;
  return q;
}
}  // namespace

std::vector<int64_t> timestep_subset(int64_t T, int64_t steps, Spacing spacing) {
  if (T < 1) throw std::invalid_argument("timestep_subset: timesteps must be >= 1 (got " + std::to_string(T) + ")");
  if (steps < 1 || steps > T)
    throw std::invalid_argument("timestep_subset: steps must be in [1, timesteps = " + std::to_string(T) + "] (got " +
                                std::to_string(steps) + ")");
  std::vector<int64_t> out(steps);
  switch (spacing) {
    case Spacing::Leading: {
      // diffusers: arange(0, steps) * (T // steps)
      const int64_t ratio = T / steps;
      for (int64_t k = 0; k < steps; ++k) out[k] = k * ratio;
      break;
    }
    case Spacing::Trailing: {
      // diffusers: round(arange(T, 0, −T/steps)) − 1, i.e. round(T·(steps−k)/steps) − 1, reversed
      for (int64_t k = 0; k < steps; ++k) out[steps - 1 - k] = round_div(T * (steps - k), steps) - 1;
      break;
    }
    case Spacing::Linspace: {
      // diffusers: round(linspace(0, T − 1, steps)) = round(k·(T−1)/(steps−1))
      if (steps == 1) {
        out[0] = 0;
      } else {
        for (int64_t k = 0; k < steps; ++k) out[k] = round_div(k * (T - 1), steps - 1);
      }
      break;
    }
    case Spacing::Karras:
    case Spacing::LogSnr:
      throw std::invalid_argument("timestep_subset: spacing " + to_string(spacing) +
                                  " places noise levels, not integer timesteps (use sampling_timesteps)");
  }
  return out;
}

SigmaTable::SigmaTable(const at::Tensor& alpha_bar64) {
  const at::Tensor ab64 = alpha_bar64.to(at::kCPU, at::kDouble).contiguous();
  alpha_bar_.assign(ab64.data_ptr<double>(), ab64.data_ptr<double>() + ab64.numel());
  if (alpha_bar_.size() < 2) throw std::invalid_argument("SigmaTable: needs at least 2 timesteps");
  log_sigma_.resize(alpha_bar_.size());
  for (size_t i = 0; i < alpha_bar_.size(); ++i) {
    const double ab = alpha_bar_[i];
    // log σ = ½ (log(1 − ᾱ) − log ᾱ); +∞ where ᾱ = 0 (zero terminal SNR)
    log_sigma_[i] = ab <= 0.0 ? std::numeric_limits<double>::infinity() : 0.5 * (std::log1p(-ab) - std::log(ab));
    if (i > 0 && !(log_sigma_[i] > log_sigma_[i - 1]))
      throw std::invalid_argument("SigmaTable: alpha_bar must decrease strictly (t = " + std::to_string(i) + ")");
  }
}

double SigmaTable::log_sigma(double t) const {
  const double last = static_cast<double>(log_sigma_.size() - 1);
  if (!(t >= 0.0 && t <= last))
    throw std::invalid_argument("SigmaTable: timestep " + std::to_string(t) + " outside [0, " + std::to_string(last) + "]");
  const auto lo = static_cast<size_t>(std::floor(t));
  const double w = t - static_cast<double>(lo);
  if (w == 0.0) return log_sigma_[lo];
  return (1.0 - w) * log_sigma_[lo] + w * log_sigma_[lo + 1];
}

double SigmaTable::sigma(double t) const { return std::exp(log_sigma(t)); }

double SigmaTable::alpha_bar(double t) const {
  if (t < 0.0) return 1.0;
  if (t == std::floor(t) && t < static_cast<double>(alpha_bar_.size())) return alpha_bar_[static_cast<size_t>(t)];
  const double s = sigma(t);
  return 1.0 / (1.0 + s * s);
}

double SigmaTable::timestep(double sigma) const {
  if (!(sigma > 0.0)) return 0.0;
  if (!std::isfinite(log_sigma_.back()))
    throw std::invalid_argument("SigmaTable: a schedule with alpha_bar = 0 (zero terminal SNR) has no finite sigma_max");
  const double ls = std::log(sigma);
  if (ls <= log_sigma_.front()) return 0.0;
  if (ls >= log_sigma_.back()) return static_cast<double>(log_sigma_.size() - 1);
  const auto hi = static_cast<size_t>(std::upper_bound(log_sigma_.begin(), log_sigma_.end(), ls) - log_sigma_.begin());
  const size_t lo = hi - 1;
  return static_cast<double>(lo) + (ls - log_sigma_[lo]) / (log_sigma_[hi] - log_sigma_[lo]);
}

std::vector<double> sampling_timesteps(const SigmaTable& table, int64_t steps, Spacing spacing, double rho) {
  const int64_t T = table.num_timesteps();
  if (spacing != Spacing::Karras && spacing != Spacing::LogSnr) {
    const auto kept = timestep_subset(T, steps, spacing);
    return {kept.begin(), kept.end()};
  }
  if (steps < 1 || steps > T)
    throw std::invalid_argument("sampling_timesteps: steps must be in [1, timesteps = " + std::to_string(T) +
                                "] (got " + std::to_string(steps) + ")");
  if (!(rho > 0.0 && std::isfinite(rho)))
    throw std::invalid_argument("sampling_timesteps: karras rho must be a positive number");
  const double sigma_min = table.sigma(0.0), sigma_max = table.sigma(static_cast<double>(T - 1));
  if (!std::isfinite(sigma_max))
    throw std::invalid_argument("spacing " + to_string(spacing) +
                                " needs a finite sigma at t = T-1; zero terminal SNR has none (use trailing)");
  std::vector<double> out(static_cast<size_t>(steps));
  out.front() = 0.0;
  out.back() = static_cast<double>(T - 1);  // the ends exactly: no round trip through pow/log
  for (int64_t i = 1; i + 1 < steps; ++i) {
    const double u = static_cast<double>(i) / static_cast<double>(steps - 1);  // 0 at σ_max … 1 at σ_min
    double sigma;
    if (spacing == Spacing::Karras) {
      // Karras et al. 2022 eq. 5
      const double a = std::pow(sigma_max, 1.0 / rho), b = std::pow(sigma_min, 1.0 / rho);
      sigma = std::pow(a + u * (b - a), rho);
    } else {
      // uniform in log σ (= uniform in λ)
      sigma = std::exp(std::log(sigma_max) + u * (std::log(sigma_min) - std::log(sigma_max)));
    }
    out[static_cast<size_t>(steps - 1 - i)] = table.timestep(sigma);
  }
  if (steps == 1) out.front() = static_cast<double>(T - 1);
  for (size_t k = 1; k < out.size(); ++k)
    if (!(out[k] > out[k - 1]))
      throw std::invalid_argument("sampling_timesteps: " + std::to_string(steps) + " " + to_string(spacing) +
                                  " steps do not give distinct timesteps on this schedule (use fewer steps)");
  return out;
}

PosteriorStep posterior_step(double beta, double alpha_bar_prev, double one_minus_alpha_bar,
                             double one_minus_alpha_bar_prev) {
  // μ̃ = coef_x0·x₀ + coef_xt·x_i and β̃ (DDPM eq. 7)
  return {beta * std::sqrt(alpha_bar_prev) / one_minus_alpha_bar,
          one_minus_alpha_bar_prev * std::sqrt(1.0 - beta) / one_minus_alpha_bar,
          beta * one_minus_alpha_bar_prev / one_minus_alpha_bar};
}

at::Tensor respaced_betas(const at::Tensor& alpha_bar64, const std::vector<int64_t>& kept) {
  if (alpha_bar64.dim() != 1) throw std::invalid_argument("respaced_betas: alpha_bar must be 1-D");
  const at::Tensor ab = alpha_bar64.to(at::kCPU, at::kDouble).contiguous();
  const double* a = ab.data_ptr<double>();
  const int64_t T = ab.size(0);
  std::vector<double> beta(kept.size());
  double prev = 1.0;  // ᾱ[kept_{−1}] = 1
  for (size_t k = 0; k < kept.size(); ++k) {
    const int64_t i = kept[k];
    if (i < 0 || i >= T) throw std::invalid_argument("respaced_betas: kept index " + std::to_string(i) + " outside [0, T)");
    if (k > 0 && i <= kept[k - 1]) throw std::invalid_argument("respaced_betas: kept indices must be strictly ascending");
    // β'_k = 1 − ᾱ[kept_k] / ᾱ[kept_{k−1}]
    beta[k] = 1.0 - a[i] / prev;
    prev = a[i];
  }
  return to_tensor64(beta);
}

}  // namespace ddpm
