#pragma once
// ε_θ(x_t, t): the time-embedded U-Net of DDPM (Ho et al. 2020, appendix B),
// a PixelCNN++-style U-Net with sinusoidal timestep embedding and self-attention.
// Layer for layer the original TF model (diffusion_tf/models/unet.py), which is also
// diffusers' UNet2DModel "ddpm" configuration:
//   conv_in 3×3 → levels (num_res_blocks × [ResBlock, Attention if the level's height is
//   listed], then Downsample except at the last level) → middle (ResBlock, Attention,
//   ResBlock) → levels reversed ((num_res_blocks + 1) × [concat skip, ResBlock, Attention
//   if listed], then Upsample except at level 0) → GroupNorm → SiLU → conv_out 3×3.
// The timestep t goes through the sinusoidal embedding (width ch), then
// Linear(ch → 4ch) → SiLU → Linear(4ch → 4ch); every ResBlock adds
// Linear(SiLU(temb)) to its features, broadcast over height and width.
// Measured speed notes (bf16, channels_last, memory) are in bench/README.md.
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ddpm/math/labels.hpp"

namespace ddpm {

/// Layout of the sinusoidal timestep embedding of width d, half = d/2, frequencies
/// f_i = exp(−ln(10⁴)·i/(half − shift)), i = 0 .. half−1:
///  Interleaved: [sin f_0 t, cos f_0 t, sin f_1 t, ...] computed in float64 (libddpm's own; shift 0 in
///               every existing checkpoint);
///  SinCos:      [sin f_i t | cos f_i t], computed in float32 as the original DDPM (shift 1) and
///               diffusers with flip_sin_to_cos = false;  CosSin: [cos | sin] (diffusers' flip = true).
enum class TimeEmbedding { Interleaved, SinCos, CosSin };
/// "interleaved" | "sin-cos" | "cos-sin"; parse throws std::invalid_argument naming time-embedding.
/// The names of the embeddings, and back.
///@{
const char* to_string(TimeEmbedding e);
TimeEmbedding parse_time_embedding(const std::string& text);
///@}

/// The U-Net's architecture: every field is a config key (the model group of ddpm-train).
struct UNetConfig {
  int64_t image_channels = 3;     ///< 1, 3 or 4
  int64_t image_height = 32;      ///< each divisible by 2^(levels−1)
  /// as image_height
  int64_t image_width = 32;
  bool learned_variance = false;  ///< output 2 × image_channels (ε and the variance interpolation)
  /// Channels of level 0 (ch); level l has base_channels × channel_mult[l].
  int64_t base_channels = 128;
  std::vector<int64_t> channel_mult{1, 2, 2, 2};  ///< one entry per level
  int64_t num_res_blocks = 2;                     ///< per level
  /// Feature-map HEIGHTS at which self-attention is used (level l has height
  /// image_height / 2^l; as the original, which tests h.shape[1]). Every entry must
  /// match some level's height. Empty: no attention except the middle block's.
  std::vector<int64_t> attention_resolutions{16};
  int64_t num_heads = 1;    ///< attention heads; must divide the channels of every attention block
  double dropout = 0.1;     ///< in every ResBlock, before its second conv (train mode only)
  int64_t groups = 32;      ///< GroupNorm groups; must divide base_channels × every mult
  double norm_eps = 1e-6;   ///< GroupNorm eps
  std::string resample = "conv";  ///< down: "conv" (pad right/bottom by 1, stride-2 3×3) | "avgpool" (2×2)
  bool channels_last = false;     ///< weights and activations in channels_last memory format
  TimeEmbedding time_embedding = TimeEmbedding::Interleaved;  ///< see TimeEmbedding
  double time_freq_shift = 0.0;   ///< `shift` of the embedding's frequencies (DDPM: 1); < base_channels/2
  /// Class-conditional (Ho & Salimans 2022) when > 0: a learned embedding of num_classes + 1
  /// rows (the last is "no class") added to the time embedding. 0: unconditional, the
  /// network and its parameters exactly as before.
  int64_t num_classes = 0;
  /// Names of the classes (ids 0 .. num_classes−1), metadata for ddpm-sample --class NAME;
  /// empty: the classes are known by id only.
  std::vector<std::string> class_names;

  /// The number of resolution levels.
  int64_t levels() const { return static_cast<int64_t>(channel_mult.size()); }
  /// Output channels: image_channels, doubled with learned_variance.
  int64_t out_channels() const { return learned_variance ? 2 * image_channels : image_channels; }
  /// Width of the time embedding after its MLP: 4 × base_channels.
  int64_t time_embed_dim() const { return 4 * base_channels; }
  /// Whether the network is class-conditional.
  bool conditional() const { return num_classes > 0; }
  /// Throws std::invalid_argument naming the offending key (including a size that
  /// does not divide by 2^(levels−1), naming the size and the divisor).
  void validate() const;
  /// Throws std::invalid_argument when the network would exceed model_limits() (parameters or
  /// one image's activations), computed from the config alone: UNet's constructor calls it
  /// before building anything. Call validate() first.
  void validate_limits() const;
  /// Throws std::invalid_argument unless height and width divide by 2^(levels−1).
  void validate_size(int64_t height, int64_t width) const;
};

/// The feature map of one level on the down path (before its downsample), per image.
struct LevelInfo {
  /// Its feature map's shape C × H × W.
  ///@{
  int64_t channels, height, width;
  ///@}
  bool attention;  ///< self-attention blocks at this level
};
/// One entry per level, from the full-resolution level 0 down. Validates the config.
std::vector<LevelInfo> level_info(const UNetConfig& config);

namespace unet_detail {
// Building blocks (declared here so the model can be cloned and inspected; see unet.cpp).
class Conv2dImpl;
class GroupNormImpl;
class LinearImpl;
class ResBlockImpl;
class AttentionBlockImpl;
class DownsampleImpl;
class UpsampleImpl;
}  // namespace unet_detail

/// Parameter names follow the structure: temb_0, temb_1, class_embedding (conditional only), conv_in, `down_<level>_res_<i>`,
/// `down_<level>_attn_<i>`, `down_<level>_downsample`, mid_res_0, mid_attn, mid_res_1,
/// `up_<level>_res_<i>`, `up_<level>_attn_<i>`, `up_<level>_upsample`, norm_out, conv_out;
/// inside: conv1/conv2/norm1/norm2/temb_proj/shortcut, norm/q/k/v/proj_out, .weight/.bias.
/// Cloneable, so `model->clone()` gives an independent copy (e.g. for EMA weights).
class UNetImpl : public torch::nn::Cloneable<UNetImpl> {
 public:
  /// Builds the network of `config` (validated; std::invalid_argument naming the key).
  explicit UNetImpl(const UNetConfig& config);
  /// x: [B, C, H, W] float; t: int64 or float [B] (timestep indices; a single
  /// element is broadcast over the batch). Returns [B, out_channels, H, W]
  /// (channels_last when config().channels_last). H and W may differ from the
  /// config's, but must divide by 2^(levels−1) (std::invalid_argument otherwise).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t);
  /// Class-conditional forward: labels int64 [B] (or one value, broadcast) in
  /// [0, num_classes), or kNoClass for the unconditional output. An unconditional network
  /// accepts only kNoClass (std::invalid_argument otherwise); an undefined tensor = kNoClass.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& labels);
  /// The architecture it was built with.
  const UNetConfig& config() const { return config_; }
  /// Re-creates every layer with the original initialisation (Cloneable's contract).
  void reset() override;

 private:
  UNetConfig config_;
  std::shared_ptr<unet_detail::LinearImpl> temb0_, temb1_;
  at::Tensor class_embedding_;  ///< [num_classes + 1, time_embed_dim]; undefined when unconditional
  std::shared_ptr<unet_detail::Conv2dImpl> conv_in_, conv_out_;
  std::shared_ptr<unet_detail::GroupNormImpl> norm_out_;
  // One entry per ResBlock in path order; attention entries are null where a level has none.
  std::vector<std::shared_ptr<unet_detail::ResBlockImpl>> down_res_, up_res_;
  std::vector<std::shared_ptr<unet_detail::AttentionBlockImpl>> down_attn_, up_attn_;
  std::vector<std::shared_ptr<unet_detail::DownsampleImpl>> downsample_;  ///< levels 0 .. L−2
  std::vector<std::shared_ptr<unet_detail::UpsampleImpl>> upsample_;      ///< levels L−1 .. 1
  std::shared_ptr<unet_detail::ResBlockImpl> mid_res0_, mid_res1_;
  std::shared_ptr<unet_detail::AttentionBlockImpl> mid_attn_;
};
TORCH_MODULE(UNet);

/// Sinusoidal embedding (Vaswani et al. 2017, as in DDPM): for timestep t and even
/// width d, emb[2i] = sin(t / n^(2i/d)), emb[2i+1] = cos(t / n^(2i/d)), n = max_period,
/// i = 0 .. d/2 − 1. t: [B] int or float, any device; returns float32 [B, d] on t's device.
/// Throws std::invalid_argument for d ≤ 0 or odd.
at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double max_period = 10000.0);
/// The embedding of the given layout (Interleaved with shift 0 is the function above).
at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, TimeEmbedding layout, double shift,
                              double max_period = 10000.0);

/// Number of trainable parameters (requires_grad) of a module.
int64_t count_parameters(const torch::nn::Module& module);

/// Bounds on a U-Net built from a config, checked by UNetConfig::validate() — before any weight
/// is allocated — so a config from a file (checkpoint, diffusers, --config) cannot make the
/// process allocate without bound. Defaults: 10^9 parameters (4 GB of float32 weights) and
/// 16 bytes of activations per allowed parameter for one image (16 GB). The tools raise both
/// with --max-params N.
struct ModelLimits {
  int64_t max_params = 1000000000;          ///< parameters a config may describe (--max-params)
  double activation_bytes_per_param = 16.0;  ///< one image's activations allowed per allowed parameter
};
/// The process-wide limits (the tools set them from --max-params).
ModelLimits& model_limits();

/// Bytes of float32 activations one forward pass of one image of the config's size holds at
/// its peak, estimated from the config alone: every feature map the down path keeps for the
/// up path, four maps of the widest concatenation, and the largest attention matrix
/// (num_heads × (H·W)² at an attention level). Computed in double: no overflow.
double activation_bytes(const UNetConfig& config);

/// Number of parameters of the U-Net described by `config`, counted from the architecture
/// without building it (saturates at INT64_MAX). Validates the config's values but not its size.
int64_t parameter_count(const UNetConfig& config);

/// Multiply-adds × 2 of one forward pass for one image of the config's size, as the
/// modules count them during a real forward pass on the CPU: every convolution
/// (C_in·C_out·k²·H_out·W_out MACs), every linear layer (time MLP and the ResBlocks' time
/// projections), and the attention products qᵀk and w·v (N²·C MACs each, N = H·W).
/// Normalisation, activations, softmax, additions, biases and resampling without weights
/// are not counted.
double forward_flops(const UNetConfig& config);

/// A human-readable summary: architecture settings, one line `parameters: N`,
/// `forward GFLOPs/image`, and one line per level with its feature size C×H×W.
std::string summary(const UNetConfig& config);

}  // namespace ddpm
