#pragma once
// A minimal zip archive reader/writer (PKWARE APPNOTE 6.3): enough for NumPy's .npz files.
// Reads stored (method 0) and deflate (method 8) members, zip64 size fields in the central
// directory included (numpy writes zip64 local headers); writes stored members.
// Private to libddpm. Every failure is a std::invalid_argument "<what>: <reason>".
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ddpm::io {

/// CRC-32 (IEEE 802.3, the one zip and gzip use).
uint32_t crc32(const uint8_t* data, size_t n);

struct ZipMember {
  std::string name;
  uint16_t method = 0;
  uint32_t crc = 0;
  uint64_t compressed_size = 0, size = 0;
  uint64_t data_offset = 0;  ///< where the member's (compressed) bytes start in the archive
};

class ZipReader {
 public:
  /// `bytes`: the whole archive; `what` prefixes every error message (e.g. the file name).
  ZipReader(std::vector<uint8_t> bytes, std::string what);
  const std::vector<ZipMember>& members() const { return members_; }
  const ZipMember* find(const std::string& name) const;
  /// The member's uncompressed bytes, CRC-checked. Refuses members larger than max_size
  /// before allocating anything (and deflate members claiming more than deflate's maximum
  /// ratio of 1032:1 over their compressed size).
  std::vector<uint8_t> read(const ZipMember& member, uint64_t max_size) const;

 private:
  [[noreturn]] void fail(const std::string& why) const;
  std::vector<uint8_t> bytes_;
  std::string what_;
  std::vector<ZipMember> members_;
};

/// Writes a zip archive of stored members to `path` (through "<path>.tmp" and a rename).
/// Throws std::runtime_error naming the file when it cannot be written.
void write_zip_stored(const std::string& path, const std::vector<std::pair<std::string, std::vector<uint8_t>>>& members);

}  // namespace ddpm::io
