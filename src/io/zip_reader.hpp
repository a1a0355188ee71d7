#pragma once
// Reads the uncompressed ("stored") entries of a zip archive held in memory, as torch.save
// writes them. Untrusted: every offset and size is checked against the bytes present.
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ddpm {

class ZipReader {
 public:
  /// Parses the central directory. Throws std::invalid_argument (no file name: callers add it).
  explicit ZipReader(std::string_view bytes);
  const std::vector<std::string>& names() const { return names_; }
  /// The bytes of a stored entry; throws if absent or compressed.
  std::string_view stored(const std::string& name) const;

 private:
  std::string_view bytes_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, std::string_view> entries_;
  std::unordered_map<std::string, bool> compressed_;
};

}  // namespace ddpm
