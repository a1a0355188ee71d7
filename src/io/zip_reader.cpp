// Zip central directory → entries (APPNOTE.TXT 4.3: end record, central headers, local headers).
#include "io/zip_reader.hpp"

#include <cstdint>
#include <stdexcept>

namespace ddpm {

namespace {
uint64_t le(std::string_view b, size_t at, size_t n) {
  if (at > b.size() || n > b.size() - at) throw std::invalid_argument("zip archive truncated");
  uint64_t v = 0;
  for (size_t k = n; k-- > 0;) v = (v << 8) | static_cast<uint8_t>(b[at + k]);
  return v;
}
}  // namespace

ZipReader::ZipReader(std::string_view b) : bytes_(b) {
  // End of central directory: 22 bytes + a comment of at most 65535 bytes, at the end.
  size_t eocd = std::string_view::npos;
  if (b.size() >= 22)
    for (size_t k = b.size() - 22 + 1; k-- > 0 && b.size() - k <= 22 + 65535;)
      if (le(b, k, 4) == 0x06054b50) {
        eocd = k;
        break;
      }
  if (eocd == std::string_view::npos) throw std::invalid_argument("zip archive without an end record (truncated?)");
  uint64_t count = le(b, eocd + 10, 2), cd_size = le(b, eocd + 12, 4), cd_offset = le(b, eocd + 16, 4);
  if (count == 0xFFFF || cd_offset == 0xFFFFFFFF) {
    // Zip64: the locator (20 bytes) precedes the end record and points at the zip64 end record.
    if (eocd < 20 || le(b, eocd - 20, 4) != 0x07064b50) throw std::invalid_argument("zip64 archive without a locator");
    const uint64_t z = le(b, eocd - 20 + 8, 8);
    if (le(b, z, 4) != 0x06064b50) throw std::invalid_argument("bad zip64 end record");
    count = le(b, z + 32, 8);
    cd_size = le(b, z + 40, 8);
    cd_offset = le(b, z + 48, 8);
  }
  if (cd_offset > b.size() || cd_size > b.size() - cd_offset) throw std::invalid_argument("zip central directory out of range");
  if (count > cd_size / 46) throw std::invalid_argument("zip entry count inconsistent with the directory size");
  size_t at = cd_offset;
  for (uint64_t e = 0; e < count; ++e) {
    if (le(b, at, 4) != 0x02014b50) throw std::invalid_argument("corrupt zip central directory");
    const uint64_t method = le(b, at + 10, 2);
    uint64_t csize = le(b, at + 20, 4), usize = le(b, at + 24, 4);
    const size_t n = le(b, at + 28, 2), m = le(b, at + 30, 2), c = le(b, at + 32, 2);
    uint64_t local = le(b, at + 42, 4);
    if (at + 46 + n + m > b.size()) throw std::invalid_argument("zip archive truncated");
    std::string name(b.substr(at + 46, n));
    // Zip64 extra field (id 1): the 0xFFFFFFFF fields, in order usize, csize, offset.
    for (size_t x = at + 46 + n; x + 4 <= at + 46 + n + m;) {
      const uint64_t id = le(b, x, 2), len = le(b, x + 2, 2);
      size_t y = x + 4;
      if (id == 1) {
        if (usize == 0xFFFFFFFF) usize = le(b, y, 8), y += 8;
        if (csize == 0xFFFFFFFF) csize = le(b, y, 8), y += 8;
        if (local == 0xFFFFFFFF) local = le(b, y, 8);
      }
      x += 4 + len;
    }
    at += 46 + n + m + c;
    if (le(b, local, 4) != 0x04034b50) throw std::invalid_argument("corrupt zip local header for '" + name + "'");
    const uint64_t data = local + 30 + le(b, local + 26, 2) + le(b, local + 28, 2);
    if (data > b.size() || csize > b.size() - data) throw std::invalid_argument("zip entry '" + name + "' out of range");
    if (method == 0 && usize != csize) throw std::invalid_argument("zip entry '" + name + "' has inconsistent sizes");
    if (!entries_.emplace(name, b.substr(data, csize)).second)
      throw std::invalid_argument("duplicate zip entry '" + name + "'");
    compressed_[name] = method != 0;
    names_.push_back(std::move(name));
  }
}

std::string_view ZipReader::stored(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw std::invalid_argument("zip entry '" + name + "' missing");
  if (compressed_.at(name)) throw std::invalid_argument("zip entry '" + name + "' is compressed (torch.save stores)");
  return it->second;
}

}  // namespace ddpm
