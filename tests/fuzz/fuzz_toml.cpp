// libFuzzer target: the TOML reader (configs, and the config a checkpoint carries) on arbitrary
// bytes. Built by scripts/fuzz.sh; not part of ctest (its finds go to tests/data/fuzz/toml, which
// ctest replays). Any exception but toml::ParseError is a finding, as are crashes and hangs.
#include <cstdint>
#include <string>

#include "io/toml.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const ddpm::toml::Value doc = ddpm::toml::parse(text);
    // What parsed must survive being walked (the config reader does this).
    for (const auto& [key, value] : doc.table) (void)doc.find(key), (void)value.kind_name();
  } catch (const ddpm::toml::ParseError&) {
  }
  return 0;
}
