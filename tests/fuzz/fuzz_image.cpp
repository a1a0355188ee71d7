// libFuzzer target: the image loader (PNG/JPEG/BMP/TGA/GIF through stb_image, with libddpm's
// truncation and size checks) and the resize every dataset image goes through. Built by
// scripts/fuzz.sh; its finds go to tests/data/fuzz/image, which ctest replays.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "ddpm/data/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/ddpm-fuzz-image-" + std::to_string(::getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const ddpm::Image im = ddpm::load_image(path, size % 2 ? 0 : 3);
    (void)ddpm::resize_center_crop(im, 16, 24);
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
