#pragma once
// The library's two error helpers: bad input is a std::invalid_argument "where: what" (the
// tools print it as one line and exit 2), and foreign messages are cut to their first line.
#include <stdexcept>
#include <string>

namespace ddpm {

/// Throws std::invalid_argument("where: what"); `where` names the key, option or file.
[[noreturn]] inline void bad_input(const std::string& where, const std::string& what) {
  throw std::invalid_argument(where + ": " + what);
}

/// The first line of `s` (LibTorch and CLI11 messages may run to many lines).
inline std::string first_line(std::string s) {
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

}  // namespace ddpm
