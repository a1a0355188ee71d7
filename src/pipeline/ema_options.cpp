#include "ddpm/pipeline/ema_options.hpp"

#include <stdexcept>

namespace ddpm {

EmaWarmup parse_ema_warmup(const std::string& text) {
  if (text == "none") return EmaWarmup::None;
  if (text == "rational") return EmaWarmup::Rational;
  if (text == "power") return EmaWarmup::Power;
  throw std::invalid_argument("ema-warmup '" + text + "': expected none, rational or power");
}

std::string to_string(EmaWarmup warmup) {
  switch (warmup) {
    case EmaWarmup::None: return "none";
    case EmaWarmup::Rational: return "rational";
    case EmaWarmup::Power: return "power";
  }
  return "?";
}

}  // namespace ddpm
