// MNIST-family IDX files (http://yann.lecun.com/exdb/mnist/), plain or gzip.
// gzip is inflated with stb_image's zlib decoder (already linked), so no new dependency.
#include <ATen/ATen.h>
#include <stb_image.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/data/dataset.hpp"
#include "ddpm/io/crc32.hpp"
#include "ddpm/util/errors.hpp"

namespace ddpm {
namespace {

[[noreturn]] void bad(const std::string& path, const std::string& what) { bad_input("IDX file '" + path + "'", what); }

uint32_t crc32(const uint8_t* data, size_t n) { return ddpm::crc32_update(0, data, n); }

uint32_t le32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }
uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]; }

// One gzip member (RFC 1952): header, raw deflate stream, CRC-32 and size trailer.
std::vector<uint8_t> gunzip(const std::vector<uint8_t>& gz, const std::string& path) {
  if (gz.size() < 18 || gz[2] != 8) bad(path, "not a gzip/deflate file");
  const uint8_t flags = gz[3];
  size_t pos = 10;
  if (flags & 4) {  // FEXTRA
    if (pos + 2 > gz.size()) bad(path, "truncated gzip header");
    pos += 2 + (gz[pos] | (gz[pos + 1] << 8));
  }
  for (uint8_t zero_terminated : {uint8_t(8), uint8_t(16)})  // FNAME, FCOMMENT
    if (flags & zero_terminated) {
      while (pos < gz.size() && gz[pos] != 0) ++pos;
      ++pos;
    }
  if (flags & 2) pos += 2;  // FHCRC
  if (pos + 8 > gz.size()) bad(path, "truncated gzip file");
  int out_len = 0;
  // The whole rest of the file goes in, trailer included: the deflate stream ends
  // itself, and stb's decoder may look ahead a few bytes past its last code.
  std::unique_ptr<char, void (*)(void*)> raw(
      stbi_zlib_decode_noheader_malloc(reinterpret_cast<const char*>(gz.data() + pos),
                                       static_cast<int>(gz.size() - pos), &out_len),
      std::free);
  // stb's zlib decoder fails without setting a reason (NULL): a crash found by the fuzz corpus.
  const char* why = stbi_failure_reason();
  if (!raw) bad(path, std::string("corrupt gzip data: ") + (why ? why : "bad deflate stream"));
  std::vector<uint8_t> out(raw.get(), raw.get() + out_len);
  const uint8_t* trailer = gz.data() + gz.size() - 8;
  if (le32(trailer + 4) != static_cast<uint32_t>(out.size()) || le32(trailer) != crc32(out.data(), out.size()))
    bad(path, "gzip size or CRC-32 mismatch (truncated or corrupt file)");
  return out;
}

// The file's bytes, gunzipped when they start with gzip's magic number.
std::vector<uint8_t> read_idx_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const std::streamoff size = in ? static_cast<std::streamoff>(in.tellg()) : -1;
  if (size < 0 || !std::filesystem::is_regular_file(path)) bad(path, "cannot open");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
    bad(path, "cannot read");
  if (bytes.size() >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B) bytes = gunzip(bytes, path);
  return bytes;
}

}  // namespace

at::Tensor read_idx_labels(const std::string& path) {
  const std::vector<uint8_t> bytes = read_idx_bytes(path);
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0) bad(path, "bad magic number (not an IDX file)");
  if (bytes[2] != 0x08) bad(path, "element type " + std::to_string(bytes[2]) + " is not unsigned byte (0x08)");
  if (bytes[3] != 1) bad(path, std::to_string(bytes[3]) + " dimensions, expected 1 (labels)");
  if (bytes.size() < 8) bad(path, "truncated header");
  const int64_t n = be32(&bytes[4]);
  if (n <= 0) bad(path, "no labels");
  if (bytes.size() != 8 + static_cast<uint64_t>(n))
    bad(path, "size " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(8 + n) + " for " +
                  std::to_string(n) + " labels");
  at::Tensor labels = at::empty({n}, at::TensorOptions().dtype(at::kByte));
  std::memcpy(labels.data_ptr<uint8_t>(), bytes.data() + 8, static_cast<size_t>(n));
  return labels.to(at::kLong);
}

at::Tensor read_idx_images(const std::string& path) {
  std::vector<uint8_t> bytes = read_idx_bytes(path);
  // Magic: two zero bytes, the element type (0x08 = unsigned byte), the number of
  // dimensions; then each dimension as a big-endian uint32; then the data.
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0) bad(path, "bad magic number (not an IDX file)");
  if (bytes[2] != 0x08) bad(path, "element type " + std::to_string(bytes[2]) + " is not unsigned byte (0x08)");
  if (bytes[3] != 3) bad(path, std::to_string(bytes[3]) + " dimensions, expected 3 (images × rows × columns)");
  if (bytes.size() < 16) bad(path, "truncated header");
  const int64_t n = be32(&bytes[4]), rows = be32(&bytes[8]), cols = be32(&bytes[12]);
  if (n <= 0 || rows <= 0 || cols <= 0) bad(path, "empty dimensions");
  // Checked: three 32-bit dimensions can multiply past 2^64 and wrap to a size that matches.
  uint64_t pixels = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(n), static_cast<uint64_t>(rows), &pixels) ||
      __builtin_mul_overflow(pixels, static_cast<uint64_t>(cols), &pixels) || pixels > (uint64_t{1} << 40))
    bad(path, "dimensions " + std::to_string(n) + "×" + std::to_string(rows) + "×" + std::to_string(cols) +
                  " are too large");
  const uint64_t expected = 16 + pixels;
  if (bytes.size() != expected)
    bad(path, "size " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(expected) + " for " +
                  std::to_string(n) + "×" + std::to_string(rows) + "×" + std::to_string(cols));
  at::Tensor images = at::empty({n, 1, rows, cols}, at::TensorOptions().dtype(at::kByte));
  std::memcpy(images.data_ptr<uint8_t>(), bytes.data() + 16, static_cast<size_t>(n * rows * cols));
  return images;
}

}  // namespace ddpm
