#pragma once
#include <string>

namespace ddpm {
/// The library's version, "MAJOR.MINOR.PATCH".
std::string version();
}  // namespace ddpm
