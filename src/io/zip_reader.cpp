// Zip central directory → entries (APPNOTE.TXT 4.3: end record, central headers, local headers).
#include "io/zip_reader.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "io/crc32.hpp"

#include <stb_image.h>

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
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    // Zip64: the locator (20 bytes) precedes the end record and points at the zip64 end record.
    if (eocd < 20 || le(b, eocd - 20, 4) != 0x07064b50) throw std::invalid_argument("zip64 archive without a locator");
    const uint64_t z = le(b, eocd - 20 + 8, 8);
    if (z > b.size() || le(b, z, 4) != 0x06064b50) throw std::invalid_argument("bad zip64 end record");
    count = le(b, z + 32, 8);
    cd_size = le(b, z + 40, 8);
    cd_offset = le(b, z + 48, 8);
  }
  if (cd_offset > b.size() || cd_size > b.size() - cd_offset) throw std::invalid_argument("zip central directory out of range");
  if (count > cd_size / 46) throw std::invalid_argument("zip entry count inconsistent with the directory size");
  const std::string_view dir = b.substr(cd_offset, cd_size);
  size_t at = 0;
  for (uint64_t e = 0; e < count; ++e) {
    if (le(dir, at, 4) != 0x02014b50) throw std::invalid_argument("corrupt zip central directory");
    Entry entry;
    entry.method = static_cast<uint16_t>(le(dir, at + 10, 2));
    entry.crc = static_cast<uint32_t>(le(dir, at + 16, 4));
    uint64_t csize = le(dir, at + 20, 4), usize = le(dir, at + 24, 4);
    const size_t n = le(dir, at + 28, 2), m = le(dir, at + 30, 2), c = le(dir, at + 32, 2);
    uint64_t local = le(dir, at + 42, 4);
    if (at + 46 + n + m + c > dir.size()) throw std::invalid_argument("corrupt zip central directory (entry past its end)");
    entry.name = std::string(dir.substr(at + 46, n));
    // Zip64 extra field (id 1): the 0xFFFFFFFF fields, in order usize, csize, offset; every
    // field read inside its extra block.
    const std::string_view extra = dir.substr(at + 46 + n, m);
    for (size_t x = 0; x + 4 <= extra.size();) {
      const uint64_t id = le(extra, x, 2), len = le(extra, x + 2, 2);
      if (len > extra.size() - x - 4) throw std::invalid_argument("corrupt extra field of zip entry '" + entry.name + "'");
      const std::string_view block = extra.substr(x + 4, len);
      if (id == 1) {
        size_t y = 0;
        for (uint64_t* field : {&usize, &csize, &local})
          if (*field == 0xFFFFFFFF) *field = le(block, y, 8), y += 8;
      }
      x += 4 + len;
    }
    at += 46 + n + m + c;
    if (local > b.size() || le(b, local, 4) != 0x04034b50)
      throw std::invalid_argument("corrupt zip local header for '" + entry.name + "'");
    const uint64_t local_n = le(b, local + 26, 2), local_m = le(b, local + 28, 2);
    if (b.substr(local + 30, local_n) != entry.name)
      throw std::invalid_argument("zip local header of '" + entry.name + "' names another entry");
    entry.offset = local + 30 + local_n + local_m;
    entry.size = csize;
    entry.usize = usize;
    if (entry.offset > b.size() || csize > b.size() - entry.offset)
      throw std::invalid_argument("zip entry '" + entry.name + "' out of range");
    if (entry.method == 0 && usize != csize) throw std::invalid_argument("zip entry '" + entry.name + "' has inconsistent sizes");
    if (!index_.emplace(entry.name, entries_.size()).second)
      throw std::invalid_argument("duplicate zip entry '" + entry.name + "'");
    names_.push_back(entry.name);
    entries_.push_back(std::move(entry));
  }
}

const ZipReader::Entry* ZipReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

std::string_view ZipReader::stored(const std::string& name) const {
  const Entry* e = find(name);
  if (!e) throw std::invalid_argument("zip entry '" + name + "' missing");
  if (e->method != 0) throw std::invalid_argument("zip entry '" + name + "' is compressed (torch.save stores)");
  return bytes_.substr(e->offset, e->size);
}

std::string ZipReader::inflated(const Entry& e, uint64_t max_size) const {
  if (e.method == 0) return std::string(stored(e.name));
  if (e.method != 8) throw std::invalid_argument("zip entry '" + e.name + "' uses compression method " + std::to_string(e.method));
  if (e.usize > max_size || e.usize > 1032 * e.size + 1032 || e.size > 0x7FFFFFFF)
    throw std::invalid_argument("zip entry '" + e.name + "' claims " + std::to_string(e.usize) + " bytes (at most " +
                                std::to_string(max_size) + " read)");
  // A buffer of exactly the declared size: a stream inflating to more fails instead of growing.
  // stb may look a few bytes past the last code, so it gets the rest of the archive.
  std::string out(static_cast<size_t>(e.usize), '\0');
  const uint64_t rest = std::min<uint64_t>(bytes_.size() - e.offset, 0x7FFFFFFF);
  const int got = stbi_zlib_decode_noheader_buffer(out.data(), static_cast<int>(out.size()), bytes_.data() + e.offset,
                                                   static_cast<int>(rest));
  if (got < 0 || static_cast<uint64_t>(got) != e.usize) throw std::invalid_argument("zip entry '" + e.name + "': corrupt deflate data");
  if (crc32_update(0, out.data(), out.size()) != e.crc)
    throw std::invalid_argument("zip entry '" + e.name + "' fails its CRC-32 check (the file is corrupt)");
  return out;
}

void ZipReader::check_crcs() const {
  for (const Entry& e : entries_)
    if (e.method == 0 && crc32_update(0, bytes_.data() + e.offset, e.size) != e.crc)
      throw std::invalid_argument("zip entry '" + e.name + "' fails its CRC-32 check (the file is corrupt)");
}

}  // namespace ddpm
