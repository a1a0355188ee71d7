#pragma once
// State dicts saved by Python's torch.save (.bin, .pt, .ckpt), read without Python: the zip
// format (PyTorch >= 1.6) and the legacy pickle-then-storages format. The pickle is run by a
// restricted unpickler that knows only what a state dict needs (dicts, OrderedDict, tuples,
// lists, numbers, strings, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and typed
// storages); any other global is refused, so a hostile file cannot run code. Sizes are
// checked against the bytes present: a file never makes it allocate more than its size.
#include <ATen/Tensor.h>

#include <map>
#include <string>
#include <string_view>

namespace ddpm::torch_file {

/// name → tensor (CPU). A top-level {"state_dict": {...}} (PyTorch Lightning) or
/// {"model": {...}} is unwrapped; non-tensor entries of the dict are ignored.
/// Throws std::invalid_argument, one line naming `path`.
std::map<std::string, at::Tensor> read_state_dict(const std::string& path);

/// The same from the file's bytes; `name` is used in error messages.
std::map<std::string, at::Tensor> parse_state_dict(std::string_view bytes, const std::string& name);

}  // namespace ddpm::torch_file
