#include "io/inflate.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <stdexcept>

namespace ddpm::io {

struct Inflater::State {
  z_stream s{};
};

Inflater::Inflater(const uint8_t* data, size_t size, Format format, std::string what)
    : z_(std::make_unique<State>()), what_(std::move(what)) {
  // -15: raw deflate; 16 + 15: gzip only (header, CRC-32 and size trailer checked by zlib).
  if (inflateInit2(&z_->s, format == Format::Gzip ? 16 + MAX_WBITS : -MAX_WBITS) != Z_OK)
    throw std::runtime_error(what_ + ": cannot start zlib");
  z_->s.next_in = const_cast<Bytef*>(data);
  z_->s.avail_in = static_cast<uInt>(std::min<size_t>(size, UINT_MAX));
  rest_in_ = size - z_->s.avail_in;
}

Inflater::~Inflater() { inflateEnd(&z_->s); }

void Inflater::fail(const std::string& why) const { throw std::invalid_argument(what_ + ": " + why); }

void Inflater::read(uint8_t* out, size_t n) {
  while (n > 0) {
    if (ended_) fail("compressed data ends early (truncated or corrupt)");
    if (z_->s.avail_in == 0 && rest_in_ > 0) {
      const size_t more = std::min<size_t>(rest_in_, UINT_MAX);
      z_->s.avail_in = static_cast<uInt>(more);
      rest_in_ -= more;
    }
    const uInt chunk = static_cast<uInt>(std::min<size_t>(n, UINT_MAX));
    z_->s.next_out = out;
    z_->s.avail_out = chunk;
    const int rc = inflate(&z_->s, Z_NO_FLUSH);
    const size_t got = chunk - z_->s.avail_out;
    out += got;
    n -= got;
    if (rc == Z_STREAM_END) {
      ended_ = true;
    } else if (rc == Z_BUF_ERROR && got == 0) {
      fail("compressed data ends early (truncated)");
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      fail(std::string("corrupt compressed data (") + (z_->s.msg ? z_->s.msg : "zlib error " + std::to_string(rc)) + ")");
    }
  }
}

void Inflater::expect_end(bool whole_input) {
  if (!ended_) {
    // One more byte must not come out: the stream has to end where the caller's size says.
    uint8_t extra = 0;
    z_->s.next_out = &extra;
    z_->s.avail_out = 1;
    const int rc = inflate(&z_->s, Z_FINISH);
    if (z_->s.avail_out == 0) fail("inflates to more than the declared size");
    if (rc != Z_STREAM_END)
      fail(std::string("corrupt or truncated compressed data") + (z_->s.msg ? std::string(" (") + z_->s.msg + ")" : ""));
    ended_ = true;
  }
  if (whole_input && (z_->s.avail_in != 0 || rest_in_ != 0)) fail("data after the end of the compressed stream");
}

void inflate_exactly(const uint8_t* data, size_t size, uint8_t* out, size_t n, const std::string& what) {
  Inflater z(data, size, Inflater::Format::RawDeflate, what);
  z.read(out, n);
  z.expect_end(false);  // a zip member's compressed size is checked by the zip reader
}

}  // namespace ddpm::io
