#pragma once
// safetensors (huggingface/safetensors): an 8-byte little-endian header length N, N bytes
// of JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {"key": "text"}}, then the tensors' raw little-endian bytes, offsets
// relative to the end of the header. Files are untrusted: the reader checks every field
// (dtype, shape × element size = byte length, offsets in range, tensors covering the data
// exactly without overlap), caps the header at 100 MB and never allocates more than the
// file's size. Every error is one std::invalid_argument line naming the file.
#include <ATen/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace ddpm::safetensors {

/// The largest JSON header accepted (100 MiB): a larger one is refused before it is read.
inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

/// A safetensors file's tensors and its string metadata.
struct Contents {
  std::map<std::string, at::Tensor> tensors;        ///< CPU, contiguous, in the file's dtype
  std::map<std::string, std::string> metadata;      ///< "__metadata__" (string values only)
};

/// Reads a file. `path` names the file in errors.
Contents read_file(const std::string& path);
/// Parses the bytes of a whole file; `name` is used in error messages.
Contents parse(std::string_view bytes, const std::string& name);

/// The file's bytes: tensors (any device; made contiguous, copied to the CPU) in name order,
/// header padded with spaces to a multiple of 8. Dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
std::string serialize(const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
/// Writes serialize(...) to `path` atomically (io::write_file_atomically; std::runtime_error on failure).
void write_file(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                const std::map<std::string, std::string>& metadata = {});

}  // namespace ddpm::safetensors
