#pragma once
// Bounded decompression with zlib: raw deflate (zip members) and gzip (IDX files). The caller
// knows how many bytes to expect before inflating and gets exactly those: inflation stops at
// the bound, so a stream that would inflate to more (a bomb) costs no memory beyond it.
// Private to libddpm. Every failure is a std::invalid_argument "<what>: <reason>".
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ddpm::io {

class Inflater {
 public:
  enum class Format { RawDeflate, Gzip };
  Inflater(const uint8_t* data, size_t size, Format format, std::string what);
  ~Inflater();
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  /// Fills out[0, n) with the next n inflated bytes; throws if the stream ends first.
  void read(uint8_t* out, size_t n);
  /// Throws unless the stream ends here (no byte left to inflate; gzip: CRC-32 and size
  /// checked by zlib) and, with `whole_input`, nothing but the stream was given.
  void expect_end(bool whole_input);

 private:
  [[noreturn]] void fail(const std::string& why) const;
  struct State;
  std::unique_ptr<State> z_;
  std::string what_;
  size_t rest_in_ = 0;  ///< input beyond zlib's 32-bit window, handed over as it drains
  bool ended_ = false;
};

/// Inflates a raw deflate stream into out[0, n): exactly n bytes, no more, and the stream must
/// end there.
void inflate_exactly(const uint8_t* data, size_t size, uint8_t* out, size_t n, const std::string& what);

}  // namespace ddpm::io
