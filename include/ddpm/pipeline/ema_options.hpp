#pragma once
// The EMA's settings as a config holds them (ema-decay, ema-warmup, ema-power); the average itself
// (train/ema.hpp) belongs to training.
#include <string>

namespace ddpm {

/// How the decay grows while the average is young (n = number of updates already applied):
///   none:     decay_n = decay
///   rational: decay_n = min(decay, (1 + n) / (10 + n))          (diffusers EMAModel's default)
///   power:    decay_n = min(decay, 1 − (1 + n)^(−power))        (ema-pytorch, diffusers use_ema_warmup;
///                                                                power 2/3 suits ~1M steps, 3/4 ~100k)
/// The first update under rational uses 0.1 and under power 0, so a young average follows the weights.
enum class EmaWarmup { None, Rational, Power };
EmaWarmup parse_ema_warmup(const std::string& text);  ///< "none" | "rational" | "power"
/// "none", "rational" or "power".
std::string to_string(EmaWarmup warmup);

/// The EMA's settings (ema-decay, ema-warmup, ema-power).
struct EmaOptions {
  /// The decay once the average is old (DDPM: 0.9999).
  double decay = 0.9999;
  /// How the decay grows while the average is young.
  EmaWarmup warmup = EmaWarmup::Rational;
  /// The exponent of the power warm-up.
  double power = 2.0 / 3.0;
};

}  // namespace ddpm
