#pragma once
// CRC-32 checksums, reflected: IEEE 802.3 (polynomial 0xEDB88320), the checksum of zip and gzip
// records; Castagnoli's CRC-32C (0x82F63B78), the checksum of TFRecord (TensorBoard) records.
#include <cstddef>
#include <cstdint>

namespace ddpm {

/// Continues a CRC-32 over `n` more bytes; start with crc = 0. crc32("123456789") = 0xCBF43926.
uint32_t crc32_update(uint32_t crc, const void* data, size_t n);
/// Continues a CRC-32C over `n` more bytes; start with crc = 0. crc32c("123456789") = 0xE3069283.
uint32_t crc32c_update(uint32_t crc, const void* data, size_t n);

}  // namespace ddpm
