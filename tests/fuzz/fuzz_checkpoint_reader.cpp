// libFuzzer target: libddpm's checkpoint reader (the bounded zip reader, CRC-32, the restricted
// unpickler in TorchScript-archive mode, the archive layout checks) on arbitrary bytes. Built by
// scripts/fuzz.sh; not part of ctest (what it finds goes to tests/data/fuzz/checkpoint, which the
// FuzzCorpus test replays through CheckpointReader).
#include <cstdint>
#include <exception>
#include <string_view>

#include "../../src/io/torch_archive.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)ddpm::io::parse_torch_archive(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const std::exception&) {  // refusals are the expected outcome; crashes, hangs and leaks are not
  }
  return 0;
}
