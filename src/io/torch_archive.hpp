#pragma once
// Archives written by torch::serialize::OutputArchive (libddpm's checkpoints and classifiers),
// read without LibTorch's loader: the bounded zip reader and the restricted unpickler, never
// torch::jit::load. Such an archive is a TorchScript module file: <archive>/data.pkl pickles
// the root module, an instance of class __torch__.Module whose state dict holds the written
// values (int, float, bool, str, tuples of these, tensors) and nested archives (instances of
// __torch__.___torch_mangle_<n>.Module); tensors are _rebuild_tensor_v2 views of the storages
// <archive>/data/<key>; code/ holds the classes' TorchScript declarations, never run here;
// constants.pkl and version are not needed. Anything else is refused: another class, a state
// that is not a dict, a class whose code declares __setstate__ (LibTorch would run it), lists,
// dicts, a nesting deeper than kMaxArchiveDepth, a CRC-32 mismatch, any tensor view its storage
// does not hold (io/unpickler.hpp).
#include <ATen/core/ivalue.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace torch::nn {
class Module;
}

namespace ddpm::io {

inline constexpr int kMaxArchiveDepth = 32;

/// One (nested) archive: the values written with OutputArchive::write(key, IValue / Tensor)
/// and the archives written with write(key, OutputArchive).
struct TorchArchive {
  std::map<std::string, c10::IValue> values;
  std::map<std::string, std::shared_ptr<const TorchArchive>> children;

  const c10::IValue* value(const std::string& key) const;  ///< null if absent
  const TorchArchive* child(const std::string& key) const;  ///< null if absent
};

/// Parses the archive's bytes (CRC-32s verified). Throws std::invalid_argument, one line
/// without the file name (callers add it).
TorchArchive parse_torch_archive(std::string_view bytes);

/// Reads the regular file `path` (io::read_regular_file, at most limits::kMaxModelFileBytes) and
/// parses it. Throws std::invalid_argument, one line (naming the file only when it cannot be read).
TorchArchive read_torch_archive(const std::string& path);

/// Copies the tensors of `archive` into the parameters and buffers of `module`, laid out as
/// Module::save writes them (a nested archive per submodule). Every parameter and buffer must
/// be there with the module's shape. Throws std::invalid_argument naming the tensor.
void load_module(const TorchArchive& archive, torch::nn::Module& module);

}  // namespace ddpm::io
