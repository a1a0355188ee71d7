// libFuzzer target: the restricted unpickler as the .pt/.bin/.ckpt state-dict reader runs it
// (zip and legacy torch.save formats) on arbitrary bytes. Built by scripts/fuzz.sh; what it finds
// goes to tests/data/fuzz/torch_file, which the FuzzCorpus test replays.
#include <cstdint>
#include <exception>
#include <string_view>

#include "ddpm/io/torch_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)ddpm::torch_file::parse_state_dict(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const std::exception&) {
  }
  return 0;
}
