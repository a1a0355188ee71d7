#include "ddpm/pipeline/ema_options.hpp"
#include "util/enum_names.hpp"

#include <stdexcept>

namespace ddpm {

namespace {
constexpr util::EnumName<EmaWarmup> kEmaWarmups[] = {
    {EmaWarmup::None, "none"}, {EmaWarmup::Rational, "rational"}, {EmaWarmup::Power, "power"}};
}  // namespace

EmaWarmup parse_ema_warmup(const std::string& text) { return util::parse_enum(kEmaWarmups, text, "ema-warmup"); }

std::string to_string(EmaWarmup warmup) { return util::enum_name(kEmaWarmups, warmup); }

}  // namespace ddpm
