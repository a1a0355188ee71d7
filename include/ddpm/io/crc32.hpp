#pragma once
// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the checksum of zip and gzip records.
#include <cstddef>
#include <cstdint>

namespace ddpm {

/// Continues a CRC-32 over `n` more bytes; start with crc = 0. crc32("123456789") = 0xCBF43926.
uint32_t crc32_update(uint32_t crc, const void* data, size_t n);

}  // namespace ddpm
