#include "io/npy.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <stdexcept>

#include "io/little_endian.hpp"

namespace ddpm::io {
namespace {

[[noreturn]] void bad(const std::string& what, const std::string& why) {
  throw std::invalid_argument(what + ": " + why);
}

// The text after "'key':" in the header dict, with leading spaces skipped.
size_t value_of(const std::string& header, const std::string& key, const std::string& what) {
  const size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) bad(what, "npy header has no '" + key + "'");
  size_t pos = header.find(':', at);
  if (pos == std::string::npos) bad(what, "corrupt npy header");
  ++pos;
  while (pos < header.size() && header[pos] == ' ') ++pos;
  return pos;
}

std::vector<uint8_t> with_header(const std::string& descr, const std::string& shape, size_t data_bytes) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic (6) + version (2) + length (2) + dict + padding + '\n' is a multiple of 64.
  const size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - 10 - dict.size() - 1, ' ');
  dict.push_back('\n');
  std::vector<uint8_t> out;
  out.reserve(10 + dict.size() + data_bytes);
  static const uint8_t magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.insert(out.end(), magic, magic + 8);
  put_le16(out, dict.size());
  for (char c : dict) out.push_back(static_cast<uint8_t>(c));
  return out;
}

}  // namespace

NpyHeader parse_npy_header(const std::vector<uint8_t>& bytes, const std::string& what) {
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (bytes.size() < 10 || std::memcmp(bytes.data(), magic, 6) != 0) bad(what, "not a .npy array (bad magic)");
  const uint8_t major = bytes[6];
  size_t len = 0, start = 0;
  if (major == 1) {
    len = le16(&bytes[8]);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) bad(what, "truncated .npy header");
    len = le32(&bytes[8]);
    start = 12;
  } else {
    bad(what, ".npy format version " + std::to_string(major) + " is not supported");
  }
  if (len > bytes.size() - start) bad(what, "truncated .npy header");
  const std::string header(reinterpret_cast<const char*>(bytes.data() + start), len);
  NpyHeader h;
  h.data_offset = start + len;

  size_t pos = value_of(header, "descr", what);
  const size_t close = header.find('\'', pos + 1);
  if (pos >= header.size() || header[pos] != '\'' || close == std::string::npos) bad(what, "corrupt npy descr");
  const std::string descr = header.substr(pos + 1, close - pos - 1);  // e.g. "<f8", "|S12"
  if (descr.size() < 3 || std::string("<>|=").find(descr[0]) == std::string::npos)
    bad(what, "unsupported npy dtype '" + descr + "'");
  h.little_endian = descr[0] != '>';
  h.kind = descr[1];
  if (std::string("fiuS").find(h.kind) == std::string::npos) bad(what, "unsupported npy dtype '" + descr + "'");
  const std::string digits = descr.substr(2);
  if (digits.empty() || digits.size() > 6 || !std::all_of(digits.begin(), digits.end(), ::isdigit))
    bad(what, "unsupported npy dtype '" + descr + "'");
  h.itemsize = std::stoll(digits);
  if ((h.kind == 'f' && h.itemsize != 4 && h.itemsize != 8) ||
      ((h.kind == 'i' || h.kind == 'u') && h.itemsize != 1 && h.itemsize != 2 && h.itemsize != 4 && h.itemsize != 8) ||
      h.itemsize < 1)
    bad(what, "unsupported npy dtype '" + descr + "'");

  pos = value_of(header, "fortran_order", what);
  if (header.compare(pos, 4, "True") == 0) h.fortran_order = true;
  else if (header.compare(pos, 5, "False") != 0) bad(what, "corrupt npy fortran_order");

  pos = value_of(header, "shape", what);
  if (pos >= header.size() || header[pos] != '(') bad(what, "corrupt npy shape");
  const size_t end = header.find(')', pos);
  if (end == std::string::npos) bad(what, "corrupt npy shape");
  // Overflow-safe element count: stop as soon as it exceeds what the file can hold.
  const size_t available = bytes.size() - h.data_offset;
  uint64_t elements = 1;
  for (size_t p = pos + 1; p < end;) {
    while (p < end && (header[p] == ' ' || header[p] == ',')) ++p;
    if (p == end) break;
    size_t q = p;
    while (q < end && std::isdigit(static_cast<unsigned char>(header[q]))) ++q;
    if (q == p || q - p > 12) bad(what, "corrupt npy shape '" + header.substr(pos, end - pos + 1) + "'");
    const int64_t dim = std::stoll(header.substr(p, q - p));
    h.shape.push_back(dim);
    if (h.shape.size() > 8) bad(what, "npy array has too many dimensions");
    if (dim != 0 && elements > available / static_cast<uint64_t>(dim) + 1) elements = available + 1;
    else elements *= static_cast<uint64_t>(dim);
    p = q;
  }
  const uint64_t itemsize = static_cast<uint64_t>(h.itemsize);
  if (elements > available / itemsize || elements * itemsize != available) {
    std::string shape = "(";
    for (int64_t d : h.shape) shape += std::to_string(d) + ",";
    bad(what, "npy data is " + std::to_string(available) + " bytes, not what shape " + shape + ") of '" + descr +
                  "' needs (truncated or corrupt)");
  }
  return h;
}

at::Tensor npy_to_double(const std::vector<uint8_t>& bytes, const NpyHeader& h, const std::string& what) {
  if (h.kind == 'S') bad(what, "npy array holds bytes, not numbers");
  int64_t n = 1;
  for (int64_t d : h.shape) n *= d;
  at::Tensor out = at::empty({n}, at::kDouble);
  double* dst = out.data_ptr<double>();
  const uint8_t* src = bytes.data() + h.data_offset;
  const size_t size = static_cast<size_t>(h.itemsize);
  uint8_t item[8];
  for (int64_t i = 0; i < n; ++i, src += size) {
    // Bring each item into this (little-endian) machine's order. libddpm targets little-endian hosts.
    for (size_t b = 0; b < size; ++b) item[b] = h.little_endian ? src[b] : src[size - 1 - b];
    double v = 0;
    if (h.kind == 'f') {
      if (size == 8) std::memcpy(&v, item, 8);
      else {
        float f;
        std::memcpy(&f, item, 4);
        v = f;
      }
    } else {
      uint64_t u = load_le(item, size);
      if (h.kind == 'i' && size < 8 && (u >> (8 * size - 1)) & 1) u |= ~uint64_t(0) << (8 * size);  // sign-extend
      v = h.kind == 'i' ? static_cast<double>(static_cast<int64_t>(u)) : static_cast<double>(u);
    }
    dst[i] = v;
  }
  if (!h.fortran_order || h.shape.size() < 2) return out.view(h.shape);
  // Fortran order: the data is the C-order array of the reversed shape, transposed.
  std::vector<int64_t> reversed(h.shape.rbegin(), h.shape.rend());
  std::vector<int64_t> perm;
  for (int64_t d = static_cast<int64_t>(reversed.size()) - 1; d >= 0; --d) perm.push_back(d);
  return out.view(reversed).permute(perm).contiguous();
}

at::Tensor npy_to_double(std::vector<uint8_t>&& bytes, const NpyHeader& h, const std::string& what) {
  // Already float64 little-endian in C order (how numpy and libddpm write statistics): the tensor
  // takes the bytes over instead of copying them, so a 2 GB sigma costs 2 GB, not 4.
  if (h.kind != 'f' || h.itemsize != 8 || !h.little_endian || (h.fortran_order && h.shape.size() >= 2) ||
      h.data_offset % alignof(double) != 0)
    return npy_to_double(static_cast<const std::vector<uint8_t>&>(bytes), h, what);
  auto* owner = new std::vector<uint8_t>(std::move(bytes));
  return at::from_blob(
      owner->data() + h.data_offset, h.shape, [owner](void*) { delete owner; },
      at::TensorOptions().dtype(at::kDouble));
}

std::vector<uint8_t> npy_from_double(const at::Tensor& values) {
  at::Tensor t = values.to(at::kCPU, at::kDouble).contiguous();
  // numpy writes (3,) for one dimension and (3, 4) for two.
  std::string shape = "(";
  for (int64_t i = 0; i < t.dim(); ++i) shape += (i ? ", " : "") + std::to_string(t.size(i));
  if (t.dim() == 1) shape += ",";
  shape += ")";
  const size_t bytes = static_cast<size_t>(t.numel()) * 8;
  std::vector<uint8_t> out = with_header("<f8", shape, bytes);
  const uint8_t* p = reinterpret_cast<const uint8_t*>(t.data_ptr<double>());
  out.insert(out.end(), p, p + bytes);
  return out;
}

std::vector<uint8_t> npy_int64_scalar(int64_t value) {
  std::vector<uint8_t> out = with_header("<i8", "()", 8);
  put_le64(out, static_cast<uint64_t>(value));
  return out;
}

std::vector<uint8_t> npy_bytes_scalar(const std::string& value) {
  // numpy has no zero-length bytes dtype for a scalar: |S1 holding a NUL stands for "".
  const std::string stored = value.empty() ? std::string(1, '\0') : value;
  std::vector<uint8_t> out = with_header("|S" + std::to_string(stored.size()), "()", stored.size());
  out.insert(out.end(), stored.begin(), stored.end());
  return out;
}

}  // namespace ddpm::io
