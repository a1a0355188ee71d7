// The DDPM U-Net (Ho et al. 2020, appendix B; diffusion_tf/models/unet.py).
// Layers (unet_layers.hpp) are thin modules over ATen functions, not torch::nn layers:
// that keeps the compile cheap and lets forward avoid copies in both memory formats.
#include "ddpm/models/unet.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "models/unet_layers.hpp"

namespace ddpm {

// ------------------------------------------------------------------ config

namespace {

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

void UNetConfig::validate_size(int64_t height, int64_t width) const {
  const int64_t divisor = int64_t{1} << (levels() - 1);
  for (auto [name, size] : {std::pair<const char*, int64_t>{"height", height}, {"width", width}}) {
    if (size <= 0 || size % divisor != 0)
      throw std::invalid_argument("image " + std::string(name) + " " + std::to_string(size) +
                                  " is not divisible by " + std::to_string(divisor) + " (2^(levels-1) for " +
                                  std::to_string(levels()) + " levels of channel-mult " + join(channel_mult) + ")");
  }
}

void UNetConfig::validate() const {
  auto bad = [](const std::string& key, const std::string& what) {
    throw std::invalid_argument(key + ": " + what);
  };
  if (image_channels != 1 && image_channels != 3 && image_channels != 4)
    bad("channels", std::to_string(image_channels) + " image channels; expected 1, 3 or 4");
  if (base_channels <= 0) bad("base-channels", "must be positive, got " + std::to_string(base_channels));
  if (channel_mult.empty()) bad("channel-mult", "needs at least one level");
  if (channel_mult.size() > 16) bad("channel-mult", "more than 16 levels");
  for (int64_t m : channel_mult)
    if (m <= 0) bad("channel-mult", "entries must be positive, got " + join(channel_mult));
  if (num_res_blocks < 0) bad("num-res-blocks", "must be >= 0, got " + std::to_string(num_res_blocks));
  if (num_heads <= 0) bad("num-heads", "must be positive, got " + std::to_string(num_heads));
  if (groups <= 0) bad("groups", "must be positive, got " + std::to_string(groups));
  if (!(dropout >= 0.0 && dropout < 1.0)) bad("dropout", "must be in [0, 1), got " + std::to_string(dropout));
  if (!(norm_eps > 0.0)) bad("norm-eps", "must be positive, got " + std::to_string(norm_eps));
  if (resample != "conv" && resample != "avgpool") bad("resample", "expected conv or avgpool, got '" + resample + "'");
  validate_size(image_height, image_width);
  std::vector<int64_t> heights;
  for (int64_t l = 0; l < levels(); ++l) {
    const int64_t c = base_channels * channel_mult[l];
    if (c % groups != 0)
      bad("groups", std::to_string(groups) + " does not divide the " + std::to_string(c) + " channels of level " +
                        std::to_string(l) + " (base-channels × channel-mult)");
    heights.push_back(image_height >> l);
    // Attention at this level, and the middle block's attention at the last level.
    if ((contains(attention_resolutions, heights.back()) || l == levels() - 1) && c % num_heads != 0)
      bad("num-heads", std::to_string(num_heads) + " does not divide the " + std::to_string(c) +
                           " channels of the attention block at level " + std::to_string(l));
  }
  for (int64_t r : attention_resolutions)
    if (!contains(heights, r))
      bad("attention-resolutions", std::to_string(r) + " matches no level's feature-map height (heights: " +
                                       join(heights) + ")");
}

std::vector<LevelInfo> level_info(const UNetConfig& config) {
  config.validate();
  std::vector<LevelInfo> out;
  for (int64_t l = 0; l < config.levels(); ++l) {
    const int64_t h = config.image_height >> l;
    out.push_back({config.base_channels * config.channel_mult[l], h, config.image_width >> l,
                   contains(config.attention_resolutions, h)});
  }
  return out;
}

// ------------------------------------------------------------------ the U-Net

using namespace unet_detail;

UNetImpl::UNetImpl(const UNetConfig& config) : config_(config) {
  config_.validate();
  reset();
}

void UNetImpl::reset() {
  const UNetConfig& c = config_;
  const int64_t ch = c.base_channels, temb = c.time_embed_dim(), L = c.levels();
  auto name = [](const std::string& path, int64_t level, const std::string& what, int64_t i = -1) {
    return path + "_" + std::to_string(level) + "_" + what + (i >= 0 ? "_" + std::to_string(i) : "");
  };
  temb0_ = register_module("temb_0", std::make_shared<LinearImpl>(ch, temb, 1.0));
  temb1_ = register_module("temb_1", std::make_shared<LinearImpl>(temb, temb, 1.0));
  conv_in_ = register_module("conv_in", std::make_shared<Conv2dImpl>(c.image_channels, ch, 3, 1, 1, 1.0));

  down_res_.clear(); down_attn_.clear(); downsample_.clear();
  up_res_.clear(); up_attn_.clear(); upsample_.clear();
  std::vector<int64_t> skip{ch};  // channels of the down path's outputs kept for the up path
  int64_t cur = ch;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t out = ch * c.channel_mult[l];
    const bool attn = contains(c.attention_resolutions, c.image_height >> l);
    for (int64_t b = 0; b < c.num_res_blocks; ++b) {
      down_res_.push_back(register_module(name("down", l, "res", b), std::make_shared<ResBlockImpl>(cur, out, temb, c)));
      down_attn_.push_back(attn ? register_module(name("down", l, "attn", b), std::make_shared<AttentionBlockImpl>(out, c))
                                : nullptr);
      cur = out;
      skip.push_back(cur);
    }
    if (l != L - 1) {
      downsample_.push_back(register_module(name("down", l, "downsample"),
                                            std::make_shared<DownsampleImpl>(cur, c.resample == "conv")));
      skip.push_back(cur);
    }
  }
  mid_res0_ = register_module("mid_res_0", std::make_shared<ResBlockImpl>(cur, cur, temb, c));
  mid_attn_ = register_module("mid_attn", std::make_shared<AttentionBlockImpl>(cur, c));
  mid_res1_ = register_module("mid_res_1", std::make_shared<ResBlockImpl>(cur, cur, temb, c));
  for (int64_t l = L - 1; l >= 0; --l) {
    const int64_t out = ch * c.channel_mult[l];
    const bool attn = contains(c.attention_resolutions, c.image_height >> l);
    for (int64_t b = 0; b <= c.num_res_blocks; ++b) {
      const int64_t in = cur + skip.back();
      skip.pop_back();
      up_res_.push_back(register_module(name("up", l, "res", b), std::make_shared<ResBlockImpl>(in, out, temb, c)));
      up_attn_.push_back(attn ? register_module(name("up", l, "attn", b), std::make_shared<AttentionBlockImpl>(out, c))
                              : nullptr);
      cur = out;
    }
    if (l != 0) upsample_.push_back(register_module(name("up", l, "upsample"), std::make_shared<UpsampleImpl>(cur)));
  }
  norm_out_ = register_module("norm_out", std::make_shared<GroupNormImpl>(cur, c.groups, c.norm_eps));
  conv_out_ = register_module("conv_out", std::make_shared<Conv2dImpl>(cur, c.out_channels(), 3, 1, 1, 0.0));

  if (c.channels_last) {
    at::NoGradGuard no_grad;
    for (auto& p : parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
}

at::Tensor UNetImpl::forward(const at::Tensor& x_in, const at::Tensor& t_in) {
  const UNetConfig& c = config_;
  if (x_in.dim() != 4 || x_in.size(1) != c.image_channels)
    throw std::invalid_argument("UNet input: expected [B, " + std::to_string(c.image_channels) + ", H, W], got " +
                                c10::str(x_in.sizes()));
  c.validate_size(x_in.size(2), x_in.size(3));
  const int64_t B = x_in.size(0);
  at::Tensor t = t_in.reshape({-1});
  if (t.numel() == 1 && B != 1) t = t.expand({B});
  if (t.numel() != B)
    throw std::invalid_argument("UNet timesteps: expected " + std::to_string(B) + " values, got " +
                                std::to_string(t.numel()));
  const at::Tensor x = c.channels_last ? x_in.contiguous(at::MemoryFormat::ChannelsLast) : x_in;

  // Time embedding, shared by every residual block.
  at::Tensor temb = timestep_embedding(t.to(x.device()), c.base_channels);
  temb = temb1_->forward(at::silu(temb0_->forward(temb)));
  const at::Tensor silu_temb = at::silu(temb);

  std::vector<at::Tensor> hs;
  hs.reserve(down_res_.size() + downsample_.size() + 1);
  at::Tensor h = conv_in_->forward(x);
  hs.push_back(h);
  size_t k = 0;
  for (int64_t l = 0; l < c.levels(); ++l) {
    for (int64_t b = 0; b < c.num_res_blocks; ++b, ++k) {
      h = down_res_[k]->forward(h, silu_temb);
      if (down_attn_[k]) h = down_attn_[k]->forward(h);
      hs.push_back(h);
    }
    if (l != c.levels() - 1) {
      h = downsample_[l]->forward(h);
      hs.push_back(h);
    }
  }
  h = mid_res0_->forward(h, silu_temb);
  h = mid_attn_->forward(h);
  h = mid_res1_->forward(h, silu_temb);
  k = 0;
  for (int64_t l = c.levels() - 1; l >= 0; --l) {
    for (int64_t b = 0; b <= c.num_res_blocks; ++b, ++k) {
      h = up_res_[k]->forward(at::cat({h, hs.back()}, 1), silu_temb);
      hs.pop_back();
      if (up_attn_[k]) h = up_attn_[k]->forward(h);
    }
    if (l != 0) h = upsample_[c.levels() - 1 - l]->forward(h);
  }
  return conv_out_->forward(unet_detail::act(norm_out_->forward(h)));
}

// ------------------------------------------------------------------ free functions

at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double max_period) {
  if (dim <= 0 || dim % 2 != 0)
    throw std::invalid_argument("timestep_embedding: dim must be positive and even, got " + std::to_string(dim));
  if (t.dim() != 1) throw std::invalid_argument("timestep_embedding: t must be 1-D [B], got " + c10::str(t.sizes()));
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(t.device());
  // frequency_i = n^(−2i/d), computed in float64 so the float32 result is the rounded closed form.
  const at::Tensor freq = at::exp(at::arange(0, dim / 2, opts) * (-2.0 * std::log(max_period) / dim));
  const at::Tensor arg = t.to(at::kDouble).unsqueeze(1) * freq.unsqueeze(0);  // [B, d/2]
  // Interleave: [B, d/2, 2] (sin, cos) → [B, d].
  return at::stack({at::sin(arg), at::cos(arg)}, 2).reshape({t.size(0), dim}).to(at::kFloat);
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters())
    if (p.requires_grad()) n += p.numel();
  return n;
}

namespace {

/// Walks the layers of the config's U-Net for one image, in the same order as the model,
/// counting parameters and 2·MACs. Independent of the module code.
struct Counts {
  int64_t params = 0;
  double flops = 0;
};

Counts count_layers(const UNetConfig& c) {
  c.validate();
  Counts n;
  auto conv = [&](int64_t in, int64_t out, int64_t k, int64_t ho, int64_t wo) {
    n.params += in * out * k * k + out;
    n.flops += 2.0 * in * out * k * k * ho * wo;
  };
  auto linear = [&](int64_t in, int64_t out) {
    n.params += in * out + out;
    n.flops += 2.0 * in * out;
  };
  auto norm = [&](int64_t ch) { n.params += 2 * ch; };
  const int64_t ch = c.base_channels, temb = c.time_embed_dim(), L = c.levels();
  auto res = [&](int64_t in, int64_t out, int64_t h, int64_t w) {
    norm(in);
    conv(in, out, 3, h, w);
    linear(temb, out);
    norm(out);
    conv(out, out, 3, h, w);
    if (in != out) conv(in, out, 1, h, w);
  };
  auto attn = [&](int64_t ch_, int64_t h, int64_t w) {
    norm(ch_);
    for (int i = 0; i < 4; ++i) conv(ch_, ch_, 1, h, w);
    const double N = static_cast<double>(h * w);
    n.flops += 2.0 * 2.0 * N * N * ch_;  // qᵀk and v·softmax, N²·C MACs each (summed over heads)
  };
  linear(ch, temb);
  linear(temb, temb);
  int64_t H = c.image_height, W = c.image_width;
  conv(c.image_channels, ch, 3, H, W);
  std::vector<int64_t> skip{ch};
  int64_t cur = ch;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t out = ch * c.channel_mult[l];
    for (int64_t b = 0; b < c.num_res_blocks; ++b) {
      res(cur, out, H, W);
      cur = out;
      if (contains(c.attention_resolutions, H)) attn(cur, H, W);
      skip.push_back(cur);
    }
    if (l != L - 1) {
      H /= 2, W /= 2;
      if (c.resample == "conv") conv(cur, cur, 3, H, W);
      skip.push_back(cur);
    }
  }
  res(cur, cur, H, W);
  attn(cur, H, W);
  res(cur, cur, H, W);
  for (int64_t l = L - 1; l >= 0; --l) {
    const int64_t out = ch * c.channel_mult[l];
    for (int64_t b = 0; b <= c.num_res_blocks; ++b) {
      res(cur + skip.back(), out, H, W);
      skip.pop_back();
      cur = out;
      if (contains(c.attention_resolutions, H)) attn(cur, H, W);
    }
    if (l != 0) {
      H *= 2, W *= 2;
      conv(cur, cur, 3, H, W);
    }
  }
  norm(cur);
  conv(cur, c.out_channels(), 3, H, W);
  return n;
}

}  // namespace

int64_t parameter_count(const UNetConfig& config) { return count_layers(config).params; }

double forward_flops(const UNetConfig& config) { return count_layers(config).flops; }

std::string summary(const UNetConfig& c) {
  const auto levels = level_info(c);
  const Counts n = count_layers(c);
  std::ostringstream s;
  s << "U-Net (DDPM): " << c.image_channels << "x" << c.image_height << "x" << c.image_width << " -> "
    << c.out_channels() << " channels" << (c.learned_variance ? " (learned variance)" : "") << "\n";
  s << "base-channels " << c.base_channels << ", channel-mult " << join(c.channel_mult) << ", num-res-blocks "
    << c.num_res_blocks << ", attention-resolutions " << (c.attention_resolutions.empty() ? "none" : join(c.attention_resolutions))
    << ", num-heads " << c.num_heads << ", dropout " << c.dropout << ", groups " << c.groups << ", norm-eps "
    << c.norm_eps << ", resample " << c.resample << (c.channels_last ? ", channels-last" : "") << "\n";
  s << "parameters: " << n.params << "\n";
  s << "forward GFLOPs/image: " << n.flops * 1e-9 << "\n";
  for (size_t l = 0; l < levels.size(); ++l)
    s << "level " << l << ": " << levels[l].channels << "x" << levels[l].height << "x" << levels[l].width
      << (levels[l].attention ? " + attention" : "") << "\n";
  s << "middle: " << levels.back().channels << "x" << levels.back().height << "x" << levels.back().width
    << " + attention\n";
  return s.str();
}

}  // namespace ddpm
