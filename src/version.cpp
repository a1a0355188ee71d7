#include "ddpm/version.hpp"

namespace ddpm {
std::string version() { return DDPM_VERSION_STRING; }
}  // namespace ddpm
