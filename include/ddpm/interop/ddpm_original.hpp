#pragma once
// The original DDPM network's weights (Ho et al. 2020, diffusion_tf) as converted to PyTorch by
// pesser/pytorch_diffusion: temb.dense.{0,1}, conv_in, down.L.block.B / down.L.attn.B /
// down.L.downsample.conv, mid.block_1 / mid.attn_1 / mid.block_2, up.L.*, norm_out, conv_out.
// The layers are ours one for one (GroupNorm 32 groups, eps 1e-6; the residual 1×1 shortcut is
// `nin_shortcut`); the timestep embedding is [sin | cos] with frequencies exp(−ln 10⁴·i/(d/2 − 1)).
#include <cstdint>
#include <string>

#include "ddpm/pipeline/config.hpp"
#include "ddpm/interop/state_dict.hpp"

namespace ddpm::interop {

/// The original name of a libddpm parameter ("down_1_res_0.shortcut.weight" → "down.1.block.0.nin_shortcut.weight").
std::string original_name(const std::string& ours);

/// The run config of an original-layout state dict, inferred from its names and shapes:
/// channels, multipliers, blocks, attention levels, learned variance; GroupNorm 32 / 1e-6,
/// the paper's linear schedule (1e-4 .. 0.02, T = 1000), sampler ddpm with clipping and the
/// variance the authors sampled with (fixed_large on CIFAR-10, fixed_small at 256×256).
/// The file does not record the image size: image_size 0 takes 32 for 4 levels (CIFAR-10)
/// and 256 for 6 levels (CelebA-HQ, LSUN); other level counts need it. Throws
/// std::invalid_argument naming `what` and the key.
Config original_config(const StateDict& weights, int64_t image_size, const std::string& what);

/// Builds the U-Net of `config` and fills it from `weights` (strict, see load_mapped).
UNet import_original(const StateDict& weights, const Config& config, const std::string& what);

/// The model's parameters under the original names (for a round trip and tests).
StateDict export_original(const UNetImpl& model);

}  // namespace ddpm::interop
