// MNIST-family IDX files (http://yann.lecun.com/exdb/mnist/), plain or gzip.
// gzip is inflated with zlib, its output bounded by the size the IDX header declares.
#include <ATen/ATen.h>

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
#include "ddpm/util/errors.hpp"
#include "ddpm/io/read_file.hpp"
#include "ddpm/util/limits.hpp"
#include "io/inflate.hpp"
#include "io/little_endian.hpp"

namespace ddpm {
namespace {

[[noreturn]] void bad(const std::string& path, const std::string& what) { bad_input("IDX file '" + path + "'", what); }

using io::be32;
using io::le32;

// One gzip member (RFC 1952), inflated by zlib (which checks its CRC-32 and size trailer).
// The IDX header, inflated first, says how many bytes follow; that size is checked against
// the limit and against the gzip trailer before anything else is inflated, and inflation
// stops there: a 1 MB file of 1 GiB of zeros costs nothing (it took 2.26 GB).
std::vector<uint8_t> gunzip(const std::vector<uint8_t>& gz, const std::string& path) {
  if (gz.size() < 18 || gz[2] != 8) bad(path, "not a gzip/deflate file");
  io::Inflater z(gz.data(), gz.size(), io::Inflater::Format::Gzip, "IDX file '" + path + "'");
  std::vector<uint8_t> out(4);
  z.read(out.data(), 4);
  // Magic: two zero bytes, the element type, the number of dimensions (checked by the callers).
  const size_t dims = out[3];
  out.resize(4 + 4 * dims);
  z.read(out.data() + 4, 4 * dims);
  uint64_t total = 1;
  for (size_t d = 0; d < dims; ++d)
    if (__builtin_mul_overflow(total, uint64_t{be32(&out[4 + 4 * d])}, &total) || total > limits::kMaxIdxBytes)
      bad(path, "dimensions are too large (more than " + std::to_string(limits::kMaxIdxBytes) + " bytes)");
  total += out.size();
  if (total > limits::kMaxIdxBytes)
    bad(path, "dimensions are too large (more than " + std::to_string(limits::kMaxIdxBytes) + " bytes)");
  const uint32_t trailer_size = le32(gz.data() + gz.size() - 4);  // ISIZE: the size mod 2^32
  if (trailer_size != static_cast<uint32_t>(total))
    bad(path, "the gzip trailer's size (" + std::to_string(trailer_size) + " bytes) is not the " +
                  std::to_string(total) + " bytes the IDX header declares (truncated or corrupt file)");
  const size_t header = out.size();
  out.resize(static_cast<size_t>(total));
  z.read(out.data() + header, out.size() - header);
  z.expect_end(true);
  return out;
}

// The file's bytes, gunzipped when they start with gzip's magic number.
std::vector<uint8_t> read_idx_bytes(const std::string& path) {
  const std::string raw = io::read_regular_file(path, "IDX file", limits::kMaxIdxBytes);
  std::vector<uint8_t> bytes(raw.begin(), raw.end());
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
