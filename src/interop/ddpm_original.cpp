// pesser/pytorch_diffusion's layout ↔ libddpm.
#include "ddpm/interop/ddpm_original.hpp"

#include <ATen/ATen.h>

#include <stdexcept>

namespace ddpm::interop {

std::string original_name(const std::string& ours) {
  const OurName n = split_name(ours);
  std::string rest = n.rest;
  if (n.block == "res" && rest.rfind("shortcut.", 0) == 0) rest = "nin_" + rest;
  const std::string L = std::to_string(n.level), B = std::to_string(n.index);
  if (n.path == "temb") return "temb.dense." + L + "." + rest;
  if (n.path == "conv_in" || n.path == "conv_out" || n.path == "norm_out") return n.path + "." + rest;
  if (n.path == "mid_attn") return "mid.attn_1." + rest;
  if (n.path == "mid") return "mid.block_" + std::to_string(n.index + 1) + "." + rest;
  if (n.block == "res") return n.path + "." + L + ".block." + B + "." + rest;
  if (n.block == "attn") return n.path + "." + L + ".attn." + B + "." + rest;
  return n.path + "." + L + "." + n.block + "." + rest;  // downsample.conv / upsample.conv
}

Config original_config(const StateDict& w, int64_t image_size, const std::string& what) {
  auto bad = [&](const std::string& msg) { return std::invalid_argument(what + ": " + msg); };
  auto get = [&](const std::string& key) -> const at::Tensor& {
    auto it = w.find(key);
    if (it == w.end()) throw bad("missing tensor '" + key + "' (not the original DDPM layout?)");
    return it->second;
  };
  auto has = [&](const std::string& prefix) {
    auto it = w.lower_bound(prefix);
    return it != w.end() && it->first.compare(0, prefix.size(), prefix) == 0;
  };
  const at::Tensor& conv_in = get("conv_in.weight");
  const at::Tensor& conv_out = get("conv_out.weight");
  if (conv_in.dim() != 4 || conv_out.dim() != 4) throw bad("conv_in/conv_out weights are not 4-D");
  Config c;
  UNetConfig& m = c.model;
  m.base_channels = conv_in.size(0);
  const int64_t in_ch = conv_in.size(1), out_ch = conv_out.size(0);
  if (out_ch != in_ch && out_ch != 2 * in_ch)
    throw bad("conv_out.weight has " + std::to_string(out_ch) + " outputs for " + std::to_string(in_ch) +
              " input channels (expected equal, or twice for a learned variance)");
  m.learned_variance = out_ch == 2 * in_ch;
  int64_t levels = 0;
  while (has("down." + std::to_string(levels) + ".")) ++levels;
  if (levels == 0) throw bad("no down.0.* tensors (not the original DDPM layout?)");
  int64_t blocks = 0;
  while (has("down.0.block." + std::to_string(blocks) + ".")) ++blocks;
  m.num_res_blocks = blocks;
  if (image_size == 0) {
    if (levels == 4) image_size = 32;
    else if (levels == 6) image_size = 256;
    else throw bad(std::to_string(levels) + " levels: the file does not record the image size, pass --image-size");
  }
  m.channel_mult.clear();
  m.attention_resolutions.clear();
  for (int64_t l = 0; l < levels; ++l) {
    const at::Tensor& conv1 = get("down." + std::to_string(l) + ".block.0.conv1.weight");
    if (conv1.size(0) % m.base_channels != 0)
      throw bad("down." + std::to_string(l) + ".block.0.conv1.weight: channels not a multiple of conv_in's");
    m.channel_mult.push_back(conv1.size(0) / m.base_channels);
    if (has("down." + std::to_string(l) + ".attn.")) m.attention_resolutions.push_back(image_size >> l);
  }
  m.num_heads = 1;
  m.groups = 32;
  m.norm_eps = 1e-6;
  m.resample = "conv";
  m.dropout = image_size == 32 ? 0.1 : 0.0;  // the paper: 0.1 on CIFAR-10 (training only)
  m.time_embedding = TimeEmbedding::SinCos;
  m.time_freq_shift = 1.0;
  c.image_size = std::to_string(image_size);
  c.channels = in_ch;
  c.schedule.kind = "linear";
  c.schedule.timesteps = 1000;
  c.schedule.beta_start = 1e-4;
  c.schedule.beta_end = 0.02;
  c.sample.kind = SamplerKind::Ddpm;
  c.sample.steps = 0;
  c.sample.variance = image_size == 32 ? Variance::FixedLarge : Variance::FixedSmall;
  c.sample.clip_x0 = true;
  c.resolve();
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw bad(std::string("inferred config: ") + e.what());
  }
  return c;
}

UNet import_original(const StateDict& weights, const Config& config, const std::string& what) {
  UNet model(config.model);
  load_mapped(*model, weights, original_name, what);
  return model;
}

StateDict export_original(const UNetImpl& model) {
  return export_mapped(model, original_name, [](const std::string&) { return false; });
}

}  // namespace ddpm::interop
