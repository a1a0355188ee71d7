#pragma once
// NumPy's .npy format (numpy.lib.format, versions 1.0–3.0): a magic string, a Python dict
// literal header {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }, then the raw data.
// Private to libddpm. Parse failures are std::invalid_argument "<what>: <reason>".
#include <ATen/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm::io {

struct NpyHeader {
  char kind = 0;        ///< 'f' float, 'i' signed int, 'u' unsigned int, 'S' bytes
  int64_t itemsize = 0;
  bool little_endian = true;
  bool fortran_order = false;
  std::vector<int64_t> shape;  ///< () for a scalar
  size_t data_offset = 0;      ///< where the data starts in the file's bytes
};

/// Parses and checks the header: the data must be exactly product(shape) · itemsize bytes
/// (checked without overflow, so a huge shape is an error, not an allocation).
NpyHeader parse_npy_header(const std::vector<uint8_t>& bytes, const std::string& what);

/// A float ('f', 4 or 8 bytes) or integer ('i'/'u', 1–8 bytes) array as a float64 CPU
/// tensor of its shape (C order; Fortran-order files are transposed into it).
at::Tensor npy_to_double(const std::vector<uint8_t>& bytes, const NpyHeader& header, const std::string& what);
/// The same, taking the bytes over: a '<f8' C-order array becomes the tensor without a copy.
at::Tensor npy_to_double(std::vector<uint8_t>&& bytes, const NpyHeader& header, const std::string& what);

/// .npy (version 1.0) of a float64 tensor ('<f8', C order); of an int64 scalar ('<i8',
/// shape ()); of a byte string ('|S<n>', shape ()).
std::vector<uint8_t> npy_from_double(const at::Tensor& values);
std::vector<uint8_t> npy_int64_scalar(int64_t value);
std::vector<uint8_t> npy_bytes_scalar(const std::string& value);

}  // namespace ddpm::io
