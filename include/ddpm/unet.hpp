#pragma once
// ε_θ(x_t, t): the time-embedded U-Net of DDPM (Ho et al. 2020, appendix B),
// a PixelCNN++-style U-Net with sinusoidal timestep embedding and self-attention.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

struct UNetConfig {
  int64_t image_channels = 3;     ///< 1, 3 or 4
  int64_t image_height = 32;      ///< each divisible by 2^(levels−1)
  int64_t image_width = 32;
  bool learned_variance = false;  ///< output 2 × image_channels (ε and the variance interpolation)
  int64_t base_channels = 128;
  std::vector<int64_t> channel_mult{1, 2, 2, 2};  ///< one entry per level
  int64_t num_res_blocks = 2;                     ///< per level
  std::vector<int64_t> attention_resolutions{16}; ///< feature-map heights with self-attention
  int64_t num_heads = 1;
  double dropout = 0.1;
  int64_t groups = 32;      ///< GroupNorm groups
  double norm_eps = 1e-6;   ///< GroupNorm eps
  std::string resample = "conv";  ///< down: "conv" (stride-2 3×3) | "avgpool"
  bool channels_last = false;     ///< run in channels_last memory format

  int64_t out_channels() const { return learned_variance ? 2 * image_channels : image_channels; }
  /// Throws std::invalid_argument naming the offending key (including a size that
  /// does not divide by 2^(levels−1), naming the size and the divisor).
  void validate() const;
};

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetConfig& config);
  /// x: [B, C, H, W]; t: int64 or float [B] (timestep indices). Returns [B, out_channels, H, W].
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t);
  const UNetConfig& config() const { return config_; }

 private:
  UNetConfig config_;
  // layers: see unet.cpp
};
TORCH_MODULE(UNet);

/// Sinusoidal embedding (Vaswani et al. 2017, as in DDPM): for timestep t and even
/// width d, emb[2i] = sin(t / n^(2i/d)), emb[2i+1] = cos(t / n^(2i/d)), n = 10000.
at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double max_period = 10000.0);

/// Number of trainable parameters of a module.
int64_t count_parameters(const torch::nn::Module& module);

/// Multiply-adds × 2 of one forward pass for one image, counted from the layers
/// (convolutions, linear layers, the attention products).
double forward_flops(const UNetConfig& config);

/// A human-readable summary: one line `parameters: N`, then the feature size per level.
std::string summary(const UNetConfig& config);

}  // namespace ddpm
