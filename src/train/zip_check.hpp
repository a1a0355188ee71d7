#pragma once
// Integrity of a checkpoint file. A torch::serialize archive is a zip of stored (uncompressed)
// records, and the zip format keeps a CRC-32 of every record in its central directory.
// LibTorch's reader does not check them (bit flips load silently); verify_zip_records does,
// for files of any libddpm version (old checkpoints included).
#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

struct ZipRecord {
  std::string name;
  uint64_t data_offset = 0;  ///< where the record's bytes start in the file
  uint64_t size = 0;         ///< stored (compressed) size
  uint32_t crc = 0;          ///< CRC-32 of the uncompressed bytes
  uint16_t method = 0;       ///< 0 = stored
};

/// The records of the zip file `path`, from its central directory (zip64 included).
/// Throws std::runtime_error with the reason when the directory is damaged or points
/// outside the file.
std::vector<ZipRecord> read_zip_records(const std::string& path);

/// "" when every stored record's CRC-32 matches its bytes; otherwise what is wrong,
/// naming the first bad record.
std::string verify_zip_records(const std::string& path);

}  // namespace ddpm
