// The DDPM U-Net (Ho et al. 2020, appendix B; diffusion_tf/models/unet.py).
// Layers (unet_layers.hpp) are thin modules over ATen functions, not torch::nn layers:
// that keeps the compile cheap and lets forward avoid copies in both memory formats.
#include "ddpm/models/unet.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "models/unet_layers.hpp"
#include "util/enum_names.hpp"

namespace ddpm {

// ------------------------------------------------------------------ config

namespace {

std::string approx(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", x);
  return buf;
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// Parameters of the layers (unet_layers.hpp), in double: exact below 2^53, never overflowing.
double linear(double in, double out) { return in * out + out; }
double conv(double in, double out, double k) { return in * out * k * k + out; }
double norm(double c) { return 2 * c; }
double res_block(double in, double out, double temb) {
  return norm(in) + conv(in, out, 3) + linear(temb, out) + norm(out) + conv(out, out, 3) + (in != out ? conv(in, out, 1) : 0);
}
double attention_block(double c) { return norm(c) + 4 * conv(c, c, 1); }

// The U-Net's parameters, layer by layer as UNetImpl::reset() builds them. Runs of identical
// blocks are counted by multiplication, not one by one: a hostile config may ask for 10^18.
double parameters_of(const UNetConfig& c) {
  const double ch = static_cast<double>(c.base_channels), temb = 4 * ch, R = static_cast<double>(c.num_res_blocks);
  double n = linear(ch, temb) + linear(temb, temb) + conv(static_cast<double>(c.image_channels), ch, 3);
  if (c.num_classes > 0) n += (static_cast<double>(c.num_classes) + 1) * temb;
  std::vector<std::pair<double, double>> skip{{ch, 1}};  // the maps kept for the up path: (channels, how many)
  double cur = ch;
  const int64_t L = c.levels();
  for (int64_t l = 0; l < L; ++l) {
    const double out = ch * static_cast<double>(c.channel_mult[l]);
    const bool attn = contains(c.attention_resolutions, c.image_height >> l);
    if (c.num_res_blocks > 0) {
      n += res_block(cur, out, temb) + (R - 1) * res_block(out, out, temb) + (attn ? R * attention_block(out) : 0);
      cur = out;
      skip.emplace_back(out, R);
    }
    if (l != L - 1) {
      n += c.resample == "conv" ? conv(cur, cur, 3) : 0;
      skip.emplace_back(cur, 1);
    }
  }
  n += 2 * res_block(cur, cur, temb) + attention_block(cur);
  for (int64_t l = L - 1; l >= 0; --l) {
    const double out = ch * static_cast<double>(c.channel_mult[l]);
    const bool attn = contains(c.attention_resolutions, c.image_height >> l);
    // num_res_blocks + 1 blocks, each reading the current features concatenated with the last kept map.
    for (double left = R + 1; left > 0;) {
      auto& [s, k] = skip.back();
      const double take = std::min(left, k);
      n += res_block(cur + s, out, temb) + (take - 1) * res_block(out + s, out, temb);
      cur = out;
      left -= take;
      if ((k -= take) == 0) skip.pop_back();
    }
    if (attn) n += (R + 1) * attention_block(out);
    if (l != 0) n += conv(cur, cur, 3);
  }
  return n + norm(cur) + conv(cur, static_cast<double>(c.out_channels()), 3);
}

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
  if (base_channels <= 0 || base_channels > (int64_t{1} << 24))
    bad("base-channels", "must be in [1, 16777216], got " + std::to_string(base_channels));
  if (channel_mult.empty()) bad("channel-mult", "needs at least one level");
  if (channel_mult.size() > 16) bad("channel-mult", "more than 16 levels");
  for (int64_t m : channel_mult)
    if (m <= 0 || m > 65536) bad("channel-mult", "entries must be in [1, 65536], got " + join(channel_mult));
  if (num_res_blocks < 0) bad("num-res-blocks", "must be >= 0, got " + std::to_string(num_res_blocks));
  if (num_heads <= 0) bad("num-heads", "must be positive, got " + std::to_string(num_heads));
  if (groups <= 0) bad("groups", "must be positive, got " + std::to_string(groups));
  if (!(dropout >= 0.0 && dropout < 1.0)) bad("dropout", "must be in [0, 1), got " + std::to_string(dropout));
  if (!(norm_eps > 0.0)) bad("norm-eps", "must be positive, got " + std::to_string(norm_eps));
  if (resample != "conv" && resample != "avgpool") bad("resample", "expected conv or avgpool, got '" + resample + "'");
  if (!(time_freq_shift >= 0.0 && time_freq_shift < static_cast<double>(base_channels / 2)))
    bad("time-freq-shift", "must be in [0, base-channels/2), got " + std::to_string(time_freq_shift));
  if (num_classes < 0 || num_classes > (int64_t{1} << 20))
    bad("num-classes", "must be in [0, 1048576], got " + std::to_string(num_classes));
  if (!class_names.empty() && static_cast<int64_t>(class_names.size()) != num_classes)
    bad("class-names", std::to_string(class_names.size()) + " names for " + std::to_string(num_classes) + " classes");
  if (time_embedding == TimeEmbedding::Interleaved && time_freq_shift != 0.0)
    bad("time-freq-shift", "must be 0 with time-embedding = interleaved");
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

void UNetConfig::validate_limits() const {
  auto fail = [](const std::string& key, const std::string& what) { throw std::invalid_argument(key + ": " + what); };
  const ModelLimits& limits = model_limits();
  const double params = parameters_of(*this), activations = activation_bytes(*this);
  if (params > static_cast<double>(limits.max_params))
    fail("base-channels", "the network would have " + approx(params) +
                             " parameters, more than the limit of " + std::to_string(limits.max_params) +
                             " (--max-params raises it)");
  if (activations > limits.activation_bytes_per_param * static_cast<double>(limits.max_params))
    fail("image-size", "one image's forward pass would hold " + approx(activations / 1e9) +
                          " GB of activations, more than the limit of " +
                          approx(limits.activation_bytes_per_param * static_cast<double>(limits.max_params) / 1e9) +
                          " GB (--max-params raises it)");
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

namespace {

// Rows of the class embedding for labels [B] (or one, broadcast): the class id, or the last
// row for kNoClass. Out-of-range labels are refused, never clamped.
at::Tensor class_rows(const at::Tensor& labels, int64_t B, int64_t num_classes, c10::Device device) {
  if (!labels.defined()) return at::full({B}, num_classes, at::TensorOptions().dtype(at::kLong).device(device));
  at::Tensor l = labels.reshape({-1}).to(device, at::kLong);
  if (l.numel() == 1 && B != 1) l = l.expand({B});
  if (l.numel() != B)
    throw std::invalid_argument("UNet labels: expected " + std::to_string(B) + " values, got " + std::to_string(l.numel()));
  if (B > 0 && ((l < kNoClass) | (l >= num_classes)).any().item<bool>())
    throw std::invalid_argument("UNet labels: expected class ids in [0, " + std::to_string(num_classes) +
                                ") or -1 (no class)");
  return at::where(l == kNoClass, at::full_like(l, num_classes), l);
}

}  // namespace

UNetImpl::UNetImpl(const UNetConfig& config) : config_(config) {
  config_.validate();
  config_.validate_limits();
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
  // N(0, 1) rows, as diffusers' nn.Embedding: distinct from the start, so the network learns to
  // read the class (zero rows left a tiny model ignoring it after 300 steps: the rows' gradients
  // are weak while every class looks alike).
  class_embedding_ = c.conditional() ? register_parameter("class_embedding", at::randn({c.num_classes + 1, temb}))
                                     : at::Tensor();
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

at::Tensor UNetImpl::forward(const at::Tensor& x_in, const at::Tensor& t_in) { return forward(x_in, t_in, {}); }

at::Tensor UNetImpl::forward(const at::Tensor& x_in, const at::Tensor& t_in, const at::Tensor& labels_in) {
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
  at::Tensor temb = timestep_embedding(t.to(x.device()), c.base_channels, c.time_embedding, c.time_freq_shift);
  temb = temb1_->forward(at::silu(temb0_->forward(temb)));
  if (c.conditional()) temb = temb + class_embedding_.index_select(0, class_rows(labels_in, B, c.num_classes, x.device()));
  else if (labels_in.defined() && labels_in.numel() > 0 && (labels_in != kNoClass).any().item<bool>())
    throw std::invalid_argument("UNet labels: the network is unconditional (num-classes = 0) but class labels were given");
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

at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, TimeEmbedding layout, double shift, double max_period) {
  if (layout == TimeEmbedding::Interleaved) {
    if (shift != 0.0) throw std::invalid_argument("timestep_embedding: the interleaved layout has shift 0");
    return timestep_embedding(t, dim, max_period);
  }
  if (dim <= 0 || dim % 2 != 0)
    throw std::invalid_argument("timestep_embedding: dim must be positive and even, got " + std::to_string(dim));
  if (t.dim() != 1) throw std::invalid_argument("timestep_embedding: t must be 1-D [B], got " + c10::str(t.sizes()));
  const int64_t half = dim / 2;
  if (!(shift >= 0.0 && shift < static_cast<double>(half)))
    throw std::invalid_argument("timestep_embedding: shift must be in [0, dim/2)");
  // float32 throughout, as the original and diffusers: the pretrained models saw exactly these values.
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(t.device());
  const at::Tensor freq = at::exp(at::arange(0, half, opts) * (-std::log(max_period) / (static_cast<double>(half) - shift)));
  const at::Tensor arg = t.to(at::kFloat).unsqueeze(1) * freq.unsqueeze(0);  // [B, half]
  return layout == TimeEmbedding::SinCos ? at::cat({at::sin(arg), at::cos(arg)}, 1) : at::cat({at::cos(arg), at::sin(arg)}, 1);
}

namespace {
constexpr util::EnumName<TimeEmbedding> kTimeEmbeddings[] = {{TimeEmbedding::Interleaved, "interleaved"},
                                                             {TimeEmbedding::SinCos, "sin-cos"},
                                                             {TimeEmbedding::CosSin, "cos-sin"}};
}  // namespace

const char* to_string(TimeEmbedding e) { return util::enum_name(kTimeEmbeddings, e); }

TimeEmbedding parse_time_embedding(const std::string& text) {
  return util::parse_enum(kTimeEmbeddings, text, "time-embedding");
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters())
    if (p.requires_grad()) n += p.numel();
  return n;
}

ModelLimits& model_limits() {
  static ModelLimits limits;
  return limits;
}

int64_t parameter_count(const UNetConfig& config) {
  const double n = parameters_of(config);
  return n >= 9.2e18 ? INT64_MAX : static_cast<int64_t>(n);
}

double activation_bytes(const UNetConfig& c) {
  double skips = static_cast<double>(c.base_channels) * c.image_height * c.image_width;  // conv_in
  double widest = 0, attention = 0;
  for (int64_t l = 0; l < c.levels(); ++l) {
    const double ch = static_cast<double>(c.base_channels) * c.channel_mult[l];
    const double hw = std::ldexp(static_cast<double>(c.image_height), -static_cast<int>(l)) *
                      std::ldexp(static_cast<double>(c.image_width), -static_cast<int>(l));
    skips += ch * hw * (c.num_res_blocks + (l != c.levels() - 1 ? 1 : 0));
    widest = std::max(widest, 2 * ch * hw);
    if (contains(c.attention_resolutions, c.image_height >> l) || l == c.levels() - 1)
      attention = std::max(attention, static_cast<double>(c.num_heads) * hw * hw);
  }
  return 4.0 * (skips + 4 * widest + attention);
}

double forward_flops(const UNetConfig& config) {
  UNetConfig c = config;
  c.channels_last = false;
  UNet model(c);
  c10::InferenceMode guard;
  unet_detail::FlopCount count;  // the modules add their products while it is installed
  model->forward(at::zeros({1, c.image_channels, c.image_height, c.image_width}), at::zeros({1}, at::kLong));
  return count.total;
}

std::string summary(const UNetConfig& c) {
  const auto levels = level_info(c);
  const int64_t params = parameter_count(c);
  const double flops = forward_flops(c);
  std::ostringstream s;
  s << "U-Net (DDPM): " << c.image_channels << "x" << c.image_height << "x" << c.image_width << " -> "
    << c.out_channels() << " channels" << (c.learned_variance ? " (learned variance)" : "") << "\n";
  s << "base-channels " << c.base_channels << ", channel-mult " << join(c.channel_mult) << ", num-res-blocks "
    << c.num_res_blocks << ", attention-resolutions " << (c.attention_resolutions.empty() ? "none" : join(c.attention_resolutions))
    << ", num-heads " << c.num_heads << ", dropout " << c.dropout << ", groups " << c.groups << ", norm-eps "
    << c.norm_eps << ", resample " << c.resample << (c.channels_last ? ", channels-last" : "")
    << ", time-embedding " << to_string(c.time_embedding);
  if (c.conditional()) s << ", classes " << c.num_classes;
  if (c.time_freq_shift != 0.0) s << " (shift " << c.time_freq_shift << ")";
  s << "\n";
  s << "parameters: " << params << "\n";
  s << "forward GFLOPs/image: " << flops * 1e-9 << "\n";
  for (size_t l = 0; l < levels.size(); ++l)
    s << "level " << l << ": " << levels[l].channels << "x" << levels[l].height << "x" << levels[l].width
      << (levels[l].attention ? " + attention" : "") << "\n";
  s << "middle: " << levels.back().channels << "x" << levels.back().height << "x" << levels.back().width
    << " + attention\n";
  return s.str();
}

}  // namespace ddpm
