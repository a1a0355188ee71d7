#pragma once
// libddpm's one zip archive reader and writer (PKWARE APPNOTE 6.3), for every zip-based format:
// checkpoints and classifiers (io/torch_archive), torch.save files (torch_file), NumPy's .npz
// (eval/stats_file) and the converter's format probe.
//
// The reader works on archive bytes held in memory, without copying them: stored entries are
// handed out as views (a checkpoint's tensors are copied once, into their tensors), deflated
// ones (LibTorch's code/, some .npz files) are inflated on request into a buffer of exactly their
// declared size by the bounded zlib inflater (io/inflate). Zip64 (end record, locator, extra
// fields) is read. Untrusted input: every offset and size is checked against the bytes present,
// each extra field against its entry, each local header against its central entry, and every
// entry's bytes against the CRC-32 of the directory (read() always, stored() after check_crcs()).
// Every failure is a std::invalid_argument "<what>: <reason>" (just "<reason>" without a what:
// the caller adds the file name).
//
// The writer writes stored entries (NumPy's np.savez layout; tests build archives with it).
// Private to libddpm.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ddpm::io {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  ///< 0 stored, 8 deflate
  uint32_t crc = 0;     ///< CRC-32 of the uncompressed bytes
  uint64_t offset = 0;  ///< where the entry's (compressed) bytes start in the archive
  uint64_t size = 0;    ///< bytes in the archive (compressed size)
  uint64_t usize = 0;   ///< uncompressed size
};

class ZipReader {
 public:
  using Entry = ZipEntry;
  /// Parses the central directory of the archive `bytes`, which must outlive the reader (views
  /// into it are handed out). `what` prefixes every error message (e.g. "statistics file 'x'").
  explicit ZipReader(std::string_view bytes, std::string what = {});
  /// Every entry, in directory order.
  const std::vector<ZipEntry>& entries() const { return entries_; }
  /// The entry called `name`, or nullptr.
  const ZipEntry* find(const std::string& name) const;
  /// The bytes of a stored entry, in place (not CRC-checked: see check_crcs()); throws if the
  /// entry is absent or compressed.
  std::string_view stored(const std::string& name) const;
  std::string_view stored(const ZipEntry& entry) const;
  /// The uncompressed bytes of a stored or deflated entry, CRC-checked. Refuses entries larger
  /// than max_size before allocating anything (and deflated entries claiming more than
  /// deflate's maximum ratio of 1032:1 over their compressed size).
  std::vector<uint8_t> read(const ZipEntry& entry, uint64_t max_size) const;
  /// Throws naming the first stored entry whose bytes fail their CRC-32.
  void check_crcs() const;

 private:
  [[noreturn]] void fail(const std::string& why) const;
  std::string_view bytes_;
  std::string what_;
  std::vector<ZipEntry> entries_;
  std::map<std::string, size_t> index_;
};

/// True when `bytes` start like a zip archive (a local file header's signature).
bool looks_like_zip(std::string_view bytes);

/// The bytes of a zip archive of stored entries (no zip64: each entry and the archive under 4 GiB).
std::string zip_stored(const std::vector<std::pair<std::string, std::vector<uint8_t>>>& entries);

/// Writes zip_stored(entries) to `path` through io::write_file_atomically, creating its folder.
/// Throws std::runtime_error naming the file when it cannot be written.
void write_zip_stored(const std::string& path, const std::vector<std::pair<std::string, std::vector<uint8_t>>>& entries);

}  // namespace ddpm::io
