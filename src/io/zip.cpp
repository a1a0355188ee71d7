#include "io/zip.hpp"

#include "ddpm/io/atomic_file.hpp"
#include "io/crc32.hpp"
#include "ddpm/util/limits.hpp"
#include "io/inflate.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace ddpm::io {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }
uint64_t le64(const uint8_t* p) { return le32(p) | (uint64_t(le32(p + 4)) << 32); }

void put16(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}
void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, v & 0xFFFF);
  put16(out, v >> 16);
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t n) { return ddpm::crc32_update(0, data, n); }

void ZipReader::fail(const std::string& why) const { throw std::invalid_argument(what_ + ": " + why); }

ZipReader::ZipReader(std::vector<uint8_t> bytes, std::string what) : bytes_(std::move(bytes)), what_(std::move(what)) {
  const size_t n = bytes_.size();
  if (n < 22) fail("not a zip archive (too short)");
  // The end-of-central-directory record: 22 bytes plus a comment of at most 65535 bytes.
  size_t end = SIZE_MAX;
  for (size_t pos = n - 22 + 1; pos-- > 0 && n - pos <= 22 + 65535;)
    if (le32(&bytes_[pos]) == kEndSig && pos + 22 + le16(&bytes_[pos + 20]) == n) {
      end = pos;
      break;
    }
  if (end == SIZE_MAX) fail("not a zip archive (no end-of-central-directory record)");
  const uint8_t* e = &bytes_[end];
  const uint64_t count = le16(e + 10), dir_size = le32(e + 12), dir_offset = le32(e + 16);
  if (le16(e + 4) != 0 || le16(e + 6) != 0) fail("multi-volume zip archives are not supported");
  if (count == 0xFFFF || dir_size == 0xFFFFFFFFu || dir_offset == 0xFFFFFFFFu)
    fail("zip64 archives (over 4 GiB or 65535 members) are not supported");
  if (dir_offset + dir_size > end) fail("central directory lies outside the file (truncated or corrupt)");
  size_t pos = static_cast<size_t>(dir_offset);
  const size_t dir_end = pos + static_cast<size_t>(dir_size);
  for (uint64_t i = 0; i < count; ++i) {
    if (pos + 46 > dir_end || le32(&bytes_[pos]) != kCentralSig) fail("corrupt central directory");
    const uint8_t* c = &bytes_[pos];
    ZipMember m;
    m.method = le16(c + 10);
    m.crc = le32(c + 16);
    m.compressed_size = le32(c + 20);
    m.size = le32(c + 24);
    const size_t name_len = le16(c + 28), extra_len = le16(c + 30), comment_len = le16(c + 32);
    uint64_t local = le32(c + 42);
    if (pos + 46 + name_len + extra_len + comment_len > dir_end) fail("corrupt central directory entry");
    m.name.assign(reinterpret_cast<const char*>(c + 46), name_len);
    // Zip64 extended information (tag 1): the fields saturated at 0xFFFFFFFF, in this order.
    for (size_t x = 46 + name_len; x + 4 <= 46 + name_len + extra_len;) {
      const uint16_t tag = le16(c + x), len = le16(c + x + 2);
      if (x + 4 + len > 46 + name_len + extra_len) fail("corrupt extra field of '" + m.name + "'");
      if (tag == 1) {
        size_t f = x + 4;
        for (uint64_t* field : {&m.size, &m.compressed_size, &local})
          if (*field == 0xFFFFFFFFu) {
            if (f + 8 > x + 4 + len) fail("corrupt zip64 field of '" + m.name + "'");
            *field = le64(c + f);
            f += 8;
          }
      }
      x += 4 + len;
    }
    if (local + 30 > n || le32(&bytes_[local]) != kLocalSig) fail("bad local header of '" + m.name + "'");
    m.data_offset = local + 30 + le16(&bytes_[local + 26]) + le16(&bytes_[local + 28]);
    if (m.data_offset > n || m.compressed_size > n - m.data_offset)
      fail("member '" + m.name + "' runs past the end of the file (truncated)");
    members_.push_back(std::move(m));
    pos += 46 + name_len + extra_len + comment_len;
  }
}

const ZipMember* ZipReader::find(const std::string& name) const {
  for (const ZipMember& m : members_)
    if (m.name == name) return &m;
  return nullptr;
}

std::vector<uint8_t> ZipReader::read(const ZipMember& m, uint64_t max_size) const {
  if (m.size > max_size)
    fail("member '" + m.name + "' is " + std::to_string(m.size) + " bytes, more than the " +
         std::to_string(max_size) + " allowed");
  const uint8_t* data = bytes_.data() + m.data_offset;
  std::vector<uint8_t> out;
  if (m.method == 0) {
    if (m.compressed_size != m.size) fail("stored member '" + m.name + "' has inconsistent sizes");
    out.assign(data, data + m.size);
  } else if (m.method == 8) {
    if (m.size > 1032 * m.compressed_size + 1032 || m.size > limits::kMaxZipMemberBytes)
      fail("member '" + m.name + "' claims an impossible size (corrupt)");
    // Decoding into a buffer of exactly the declared size bounds the allocation: a stream
    // that inflates to more fails at the bound instead of growing.
    out.resize(static_cast<size_t>(m.size));
    inflate_exactly(data, static_cast<size_t>(m.compressed_size), out.data(), out.size(),
                    what_ + ": member '" + m.name + "'");
  } else {
    fail("member '" + m.name + "' uses compression method " + std::to_string(m.method) +
         " (only stored and deflate are supported)");
  }
  if (crc32(out.data(), out.size()) != m.crc) fail("member '" + m.name + "' fails its CRC-32 check (corrupt)");
  return out;
}

void write_zip_stored(const std::string& path, const std::vector<std::pair<std::string, std::vector<uint8_t>>>& members) {
  std::vector<uint8_t> out, dir;
  for (const auto& [name, data] : members) {
    if (data.size() >= 0xFFFFFFFFu || out.size() >= 0xFFFFFFFFu)
      throw std::runtime_error("'" + path + "': members over 4 GiB are not supported");
    const uint32_t crc = crc32(data.data(), data.size()), size = static_cast<uint32_t>(data.size());
    const uint32_t offset = static_cast<uint32_t>(out.size());
    // Local header: version 2.0, no flags, stored, DOS time/date 1980-01-01 00:00.
    for (auto* buf : {&out, &dir}) {
      const bool central = buf == &dir;
      put32(*buf, central ? kCentralSig : kLocalSig);
      if (central) put16(*buf, 20);  // version made by
      put16(*buf, 20);                // version needed
      put16(*buf, 0);                 // flags
      put16(*buf, 0);                 // method: stored
      put16(*buf, 0);                 // time
      put16(*buf, (0 << 9) | (1 << 5) | 1);  // date
      put32(*buf, crc);
      put32(*buf, size);
      put32(*buf, size);
      put16(*buf, static_cast<uint32_t>(name.size()));
      put16(*buf, 0);  // extra length
      if (central) {
        put16(*buf, 0);  // comment length
        put16(*buf, 0);  // disk
        put16(*buf, 0);  // internal attributes
        put32(*buf, 0);  // external attributes
        put32(*buf, offset);
      }
      buf->insert(buf->end(), name.begin(), name.end());
    }
    out.insert(out.end(), data.begin(), data.end());
  }
  const uint32_t dir_offset = static_cast<uint32_t>(out.size());
  out.insert(out.end(), dir.begin(), dir.end());
  put32(out, kEndSig);
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint32_t>(members.size()));
  put16(out, static_cast<uint32_t>(members.size()));
  put32(out, static_cast<uint32_t>(dir.size()));
  put32(out, dir_offset);
  put16(out, 0);

  const std::filesystem::path target(path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  // Atomic: a full disk leaves the old file and no PATH.tmp behind.
  write_file_atomically(path, std::string(out.begin(), out.end()));
}

}  // namespace ddpm::io
