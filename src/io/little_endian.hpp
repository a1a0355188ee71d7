#pragma once
// The integer fields of the binary formats libddpm reads and writes (zip, .npy, safetensors,
// pickle, TFRecord, IDX, BMP/TGA): little-endian loads and stores, and the one big-endian load
// (IDX). The one place these are written; callers check bounds before a load.
// Private to libddpm.
#include <cstddef>
#include <cstdint>

namespace ddpm::io {

/// The n-byte (n <= 8) little-endian unsigned integer at p.
inline uint64_t load_le(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint64_t v = 0;
  for (size_t k = n; k-- > 0;) v = (v << 8) | b[k];
  return v;
}
inline uint16_t le16(const void* p) { return static_cast<uint16_t>(load_le(p, 2)); }
inline uint32_t le32(const void* p) { return static_cast<uint32_t>(load_le(p, 4)); }
inline uint64_t le64(const void* p) { return load_le(p, 8); }

/// The 4-byte big-endian unsigned integer at p (IDX headers).
inline uint32_t be32(const void* p) {
  const auto* b = static_cast<const uint8_t*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

/// Appends the low n bytes (n <= 8) of v to `out` (std::string or std::vector<uint8_t>),
/// least significant first.
template <class Bytes>
void put_le(Bytes& out, uint64_t v, size_t n) {
  for (size_t k = 0; k < n; ++k) out.push_back(static_cast<typename Bytes::value_type>((v >> (8 * k)) & 0xFF));
}
template <class Bytes>
void put_le16(Bytes& out, uint64_t v) { put_le(out, v, 2); }
template <class Bytes>
void put_le32(Bytes& out, uint64_t v) { put_le(out, v, 4); }
template <class Bytes>
void put_le64(Bytes& out, uint64_t v) { put_le(out, v, 8); }

}  // namespace ddpm::io
