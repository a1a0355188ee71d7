// libFuzzer target: the checkpoint integrity check (zip directory parser + CRC-32) on arbitrary
// bytes. Built by scripts/fuzz.sh with -fsanitize=fuzzer,address,undefined; not part of ctest
// (the corpus it finds goes to tests/data/fuzz/checkpoint, which ctest replays).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "../../src/train/zip_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/ddpm-fuzz-zip-" + std::to_string(::getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  (void)ddpm::verify_zip_records(path);  // must return, whatever the bytes
  return 0;
}
