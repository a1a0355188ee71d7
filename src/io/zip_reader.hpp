#pragma once
// Reads the uncompressed ("stored") entries of a zip archive held in memory, as torch.save and
// torch::serialize::OutputArchive write them (zip64 included), without copying them; deflated
// entries (LibTorch's code/) on request, bounded.
// Untrusted: every offset and size is checked against the bytes present, the extra fields
// against their entry, and check_crcs() verifies the CRC-32 the directory keeps for each entry.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ddpm {

class ZipReader {
 public:
  struct Entry {
    std::string name;
    uint64_t offset = 0;  ///< where the entry's bytes start in the archive
    uint64_t size = 0;    ///< bytes in the archive (compressed size)
    uint64_t usize = 0;   ///< uncompressed size
    uint32_t crc = 0;     ///< CRC-32 of the uncompressed bytes
    uint16_t method = 0;  ///< 0 = stored
  };
  /// Parses the central directory. Throws std::invalid_argument (no file name: callers add it).
  explicit ZipReader(std::string_view bytes);
  const std::vector<std::string>& names() const { return names_; }
  /// Every entry, in directory order.
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const;
  /// The bytes of a stored entry; throws if absent or compressed.
  std::string_view stored(const std::string& name) const;
  /// The uncompressed bytes of a stored or deflated entry (LibTorch deflates code/), CRC-checked;
  /// refuses entries declaring more than max_size bytes before inflating anything.
  std::string inflated(const Entry& entry, uint64_t max_size) const;
  /// Throws std::invalid_argument naming the first stored entry whose bytes fail their CRC-32.
  void check_crcs() const;

 private:
  std::string_view bytes_;
  std::vector<std::string> names_;
  std::vector<Entry> entries_;
  std::map<std::string, size_t> index_;
};

}  // namespace ddpm
