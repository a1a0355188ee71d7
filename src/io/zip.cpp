// Zip archives (APPNOTE.TXT 4.3: end record, zip64 locator and end record, central headers,
// local headers), read in place and bounded; written with stored entries.
#include "io/zip.hpp"

#include <filesystem>
#include <stdexcept>

#include "ddpm/io/atomic_file.hpp"
#include "io/crc32.hpp"
#include "ddpm/util/limits.hpp"
#include "io/inflate.hpp"
#include "io/little_endian.hpp"

namespace ddpm::io {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50, kZip64EndSig = 0x06064b50;
constexpr size_t kEndBytes = 22, kCentralBytes = 46, kLocalBytes = 30, kLocatorBytes = 20, kZip64EndBytes = 56;

}  // namespace

void ZipReader::fail(const std::string& why) const {
  throw std::invalid_argument(what_.empty() ? why : what_ + ": " + why);
}

ZipReader::ZipReader(std::string_view b, std::string what) : bytes_(b), what_(std::move(what)) {
  const uint64_t n = b.size();
  const auto* p = reinterpret_cast<const uint8_t*>(b.data());
  if (n < kEndBytes) fail("not a zip archive (too short)");
  // The end-of-central-directory record: 22 bytes plus a comment of at most 65535 bytes.
  uint64_t end = UINT64_MAX;
  for (uint64_t pos = n - kEndBytes + 1; pos-- > 0 && n - pos <= kEndBytes + 65535;)
    if (le32(p + pos) == kEndSig && pos + kEndBytes + le16(p + pos + 20) <= n) {
      end = pos;
      break;
    }
  if (end == UINT64_MAX) fail("not a zip archive (no end-of-central-directory record; truncated?)");
  const uint8_t* e = p + end;
  if (le16(e + 4) != 0 || le16(e + 6) != 0) fail("multi-volume zip archives are not supported");
  uint64_t count = le16(e + 10), dir_size = le32(e + 12), dir_offset = le32(e + 16);
  if (count == 0xFFFF || dir_size == 0xFFFFFFFFu || dir_offset == 0xFFFFFFFFu) {
    // Zip64: the locator (20 bytes) precedes the end record and points at the zip64 end record.
    if (end < kLocatorBytes || le32(p + end - kLocatorBytes) != kZip64LocatorSig) fail("zip64 archive without a locator");
    const uint64_t z = le64(p + end - kLocatorBytes + 8);
    if (z > end - kLocatorBytes || end - kLocatorBytes - z < kZip64EndBytes || le32(p + z) != kZip64EndSig)
      fail("bad zip64 end record");
    count = le64(p + z + 32);
    dir_size = le64(p + z + 40);
    dir_offset = le64(p + z + 48);
  }
  if (dir_offset > n || dir_size > n - dir_offset) fail("central directory lies outside the file (truncated or corrupt)");
  if (count > dir_size / kCentralBytes) fail("entry count inconsistent with the central directory's size (corrupt)");
  const uint8_t* dir = p + dir_offset;
  uint64_t at = 0;
  for (uint64_t i = 0; i < count; ++i) {
    if (dir_size - at < kCentralBytes || le32(dir + at) != kCentralSig) fail("corrupt central directory");
    const uint8_t* c = dir + at;
    ZipEntry entry;
    entry.method = le16(c + 10);
    entry.crc = le32(c + 16);
    uint64_t size = le32(c + 20), usize = le32(c + 24), local = le32(c + 42);
    const uint64_t name_len = le16(c + 28), extra_len = le16(c + 30), comment_len = le16(c + 32);
    if (dir_size - at - kCentralBytes < name_len + extra_len + comment_len)
      fail("corrupt central directory (an entry runs past its end)");
    entry.name.assign(reinterpret_cast<const char*>(c + kCentralBytes), name_len);
    // Zip64 extended information (tag 1): the fields saturated at 0xFFFFFFFF, in the order
    // uncompressed size, compressed size, local header offset; each read inside its block.
    const uint8_t* extra = c + kCentralBytes + name_len;
    for (uint64_t x = 0; x + 4 <= extra_len;) {
      const uint64_t tag = le16(extra + x), len = le16(extra + x + 2);
      if (len > extra_len - x - 4) fail("corrupt extra field of '" + entry.name + "'");
      if (tag == 1) {
        uint64_t y = 0;
        for (uint64_t* field : {&usize, &size, &local})
          if (*field == 0xFFFFFFFFu) {
            if (len - y < 8) fail("corrupt zip64 field of '" + entry.name + "'");
            *field = le64(extra + x + 4 + y);
            y += 8;
          }
      }
      x += 4 + len;
    }
    at += kCentralBytes + name_len + extra_len + comment_len;
    if (local > n || n - local < kLocalBytes || le32(p + local) != kLocalSig)
      fail("bad local header of '" + entry.name + "'");
    const uint64_t local_name = le16(p + local + 26), local_extra = le16(p + local + 28);
    if (b.substr(local + kLocalBytes, local_name) != entry.name)
      fail("the local header of '" + entry.name + "' names another entry (corrupt)");
    entry.offset = local + kLocalBytes + local_name + local_extra;
    if (entry.offset > n || size > n - entry.offset) fail("entry '" + entry.name + "' runs past the end of the file (truncated)");
    if (entry.method == 0 && size != usize) fail("stored entry '" + entry.name + "' has inconsistent sizes");
    entry.size = size;
    entry.usize = usize;
    if (!index_.emplace(entry.name, entries_.size()).second) fail("duplicate entry '" + entry.name + "'");
    entries_.push_back(std::move(entry));
  }
}

const ZipEntry* ZipReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

std::string_view ZipReader::stored(const std::string& name) const {
  const ZipEntry* e = find(name);
  if (!e) fail("entry '" + name + "' missing");
  return stored(*e);
}

std::string_view ZipReader::stored(const ZipEntry& e) const {
  if (e.method != 0) fail("entry '" + e.name + "' is compressed (only stored entries are read in place)");
  return bytes_.substr(e.offset, e.size);
}

std::vector<uint8_t> ZipReader::read(const ZipEntry& e, uint64_t max_size) const {
  if (e.usize > max_size)
    fail("entry '" + e.name + "' is " + std::to_string(e.usize) + " bytes, more than the " + std::to_string(max_size) +
         " allowed");
  const auto* data = reinterpret_cast<const uint8_t*>(bytes_.data()) + e.offset;
  std::vector<uint8_t> out;
  if (e.method == 0) {
    out.assign(data, data + e.size);
  } else if (e.method == 8) {
    if (e.usize > 1032 * e.size + 1032 || e.usize > limits::kMaxZipMemberBytes)
      fail("entry '" + e.name + "' claims an impossible size (corrupt)");
    // A buffer of exactly the declared size bounds the allocation: a stream that inflates to
    // more fails at the bound instead of growing.
    out.resize(static_cast<size_t>(e.usize));
    inflate_exactly(data, static_cast<size_t>(e.size), out.data(), out.size(),
                    (what_.empty() ? "" : what_ + ": ") + "entry '" + e.name + "'");
  } else {
    fail("entry '" + e.name + "' uses compression method " + std::to_string(e.method) +
         " (only stored and deflate are supported)");
  }
  if (crc32_update(0, out.data(), out.size()) != e.crc) fail("entry '" + e.name + "' fails its CRC-32 check (corrupt)");
  return out;
}

void ZipReader::check_crcs() const {
  for (const ZipEntry& e : entries_)
    if (e.method == 0 && crc32_update(0, bytes_.data() + e.offset, e.size) != e.crc)
      fail("entry '" + e.name + "' fails its CRC-32 check (the file is corrupt)");
}

bool looks_like_zip(std::string_view bytes) { return bytes.size() >= 4 && le32(bytes.data()) == kLocalSig; }

std::string zip_stored(const std::vector<std::pair<std::string, std::vector<uint8_t>>>& entries) {
  std::string out, dir;
  for (const auto& [name, data] : entries) {
    if (data.size() >= 0xFFFFFFFFu || out.size() >= 0xFFFFFFFFu || name.size() > 0xFFFF)
      throw std::runtime_error("zip entries over 4 GiB (or names over 64 KiB) are not supported");
    const uint32_t crc = crc32_update(0, data.data(), data.size());
    const uint64_t offset = out.size();
    // Version 2.0, no flags, stored, DOS time/date 1980-01-01 00:00.
    for (std::string* buf : {&out, &dir}) {
      const bool central = buf == &dir;
      put_le32(*buf, central ? kCentralSig : kLocalSig);
      if (central) put_le16(*buf, 20);  // version made by
      put_le16(*buf, 20);                // version needed
      put_le16(*buf, 0);                 // flags
      put_le16(*buf, 0);                 // method: stored
      put_le16(*buf, 0);                 // time
      put_le16(*buf, (0 << 9) | (1 << 5) | 1);  // date
      put_le32(*buf, crc);
      put_le32(*buf, data.size());  // compressed size
      put_le32(*buf, data.size());  // size
      put_le16(*buf, name.size());
      put_le16(*buf, 0);  // extra length
      if (central) {
        put_le16(*buf, 0);  // comment length
        put_le16(*buf, 0);  // disk
        put_le16(*buf, 0);  // internal attributes
        put_le32(*buf, 0);  // external attributes
        put_le32(*buf, offset);
      }
      *buf += name;
    }
    out.append(reinterpret_cast<const char*>(data.data()), data.size());
  }
  if (out.size() >= 0xFFFFFFFFu || entries.size() >= 0xFFFF) throw std::runtime_error("zip archives over 4 GiB are not supported");
  const uint64_t dir_offset = out.size();
  out += dir;
  put_le32(out, kEndSig);
  put_le16(out, 0);  // this disk
  put_le16(out, 0);  // the directory's disk
  put_le16(out, entries.size());
  put_le16(out, entries.size());
  put_le32(out, dir.size());
  put_le32(out, dir_offset);
  put_le16(out, 0);  // comment length
  return out;
}

void write_zip_stored(const std::string& path, const std::vector<std::pair<std::string, std::vector<uint8_t>>>& entries) {
  std::string bytes;
  try {
    bytes = zip_stored(entries);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("'" + path + "': " + e.what());
  }
  const std::filesystem::path target(path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  // Atomic: a full disk leaves the old file and no PATH.tmp behind.
  write_file_atomically(path, bytes);
}

}  // namespace ddpm::io
