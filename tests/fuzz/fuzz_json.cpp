// libFuzzer target: the strict JSON reader (safetensors headers, diffusers config.json) on
// arbitrary bytes, and the writer on what it accepts: write(parse(x)) must parse to the same text.
// Built by scripts/fuzz.sh; its finds go to tests/data/fuzz/json (as .safetensors headers).
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "io/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ddpm::json::Value v;
  try {
    v = ddpm::json::parse(text);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  const std::string once = ddpm::json::write(v);
  if (ddpm::json::write(ddpm::json::parse(once)) != once) std::abort();  // round trip
  return 0;
}
