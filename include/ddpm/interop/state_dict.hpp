#pragma once
// Foreign weights as a flat state dict, and the strict copy between a state dict and the U-Net
// through a naming function: every parameter of the model filled, every tensor of the source
// used, shapes checked (a 1×1 conv weight [C, C, 1, 1] also accepts the Linear shape [C, C]).
#include <ATen/Tensor.h>

#include <functional>
#include <map>
#include <string>

#include "ddpm/models/unet.hpp"

namespace ddpm::interop {

/// Tensors by parameter name, as PyTorch's state_dict().
using StateDict = std::map<std::string, at::Tensor>;

/// Reads a .safetensors file (by its extension) or a torch.save file (.bin, .pt, .ckpt, ...).
/// Throws std::invalid_argument, one line naming the file.
StateDict read_weights(const std::string& path);

/// Maps a libddpm parameter name ("down_0_res_1.conv1.weight") to the source's name.
using NameMap = std::function<std::string(const std::string& ours)>;

/// Copies `source` into the model's parameters (converted to the parameter's dtype).
/// Throws std::invalid_argument naming `what` (the file) and the key: a missing key, a shape
/// that differs, or a source tensor that no parameter used.
void load_mapped(UNetImpl& model, const StateDict& source, const NameMap& name_of, const std::string& what);

/// The model's parameters under the source's names (float32, contiguous, CPU). linear_1x1:
/// whether a 1×1 conv weight is written as [C_out, C_in] (for a target that uses Linear).
StateDict export_mapped(const UNetImpl& model, const NameMap& name_of, const std::function<bool(const std::string&)>& linear_1x1);

/// "down_2_res_1.conv1.weight" → {"down", 2, "res", 1, "conv1.weight"}: the parts of our names.
struct OurName {
  std::string path;       ///< temb | conv_in | down | mid | up | norm_out | conv_out
  int64_t level = -1;     ///< down/up level, temb index (−1 otherwise)
  std::string block;      ///< res | attn | downsample | upsample ("" otherwise)
  int64_t index = -1;     ///< block index (mid: 0 or 1 for res)
  std::string rest;       ///< after the module: "conv1.weight", "weight", ...
};
/// Splits a libddpm parameter name into its parts. Throws std::invalid_argument for a name not
/// of that form.
OurName split_name(const std::string& ours);

}  // namespace ddpm::interop
