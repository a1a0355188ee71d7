#pragma once
// The U-Net's building blocks (private; tests include it to check blocks against
// independent reference computations). Thin modules over ATen functions.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#include <cmath>
#include <memory>

#include "ddpm/models/unet.hpp"

namespace ddpm::unet_detail {

/// The original's default_init: variance scaling, fan_avg, uniform (TF's
/// variance_scaling_initializer). scale 0 means 1e-10, as the original ("near zero"
/// keeps every gradient defined and non-zero while the block starts as the identity).
inline void variance_scaling_(at::Tensor& w, double scale, int64_t fan_in, int64_t fan_out) {
  if (scale == 0.0) scale = 1e-10;
  const double limit = std::sqrt(3.0 * scale / (0.5 * static_cast<double>(fan_in + fan_out)));
  at::NoGradGuard no_grad;
  w.uniform_(-limit, limit);
}

/// Without autograd nothing keeps activations for a backward pass, so they may be overwritten.
inline bool can_inplace() { return !at::GradMode::is_enabled() || c10::InferenceMode::is_enabled(); }

/// SiLU, taken by value: in place only when nothing else holds x (a temporary passed in)
/// and no graph is recorded (the backward would need the input); a tensor the caller
/// still holds is never overwritten.
inline at::Tensor act(at::Tensor x) { return can_inplace() && x.use_count() == 1 ? at::silu_(x) : at::silu(x); }

class Conv2dImpl : public torch::nn::Cloneable<Conv2dImpl> {
 public:
  Conv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, double init_scale)
      : in_(in), out_(out), kernel_(kernel), stride_(stride), padding_(padding), init_scale_(init_scale) {
    reset();
  }
  void reset() override {
    weight = register_parameter("weight", at::empty({out_, in_, kernel_, kernel_}));
    bias = register_parameter("bias", at::zeros({out_}));
    const int64_t rf = kernel_ * kernel_;
    variance_scaling_(weight, init_scale_, in_ * rf, out_ * rf);
  }
  at::Tensor forward(const at::Tensor& x) const {
    return at::conv2d(x, weight, bias, {stride_, stride_}, {padding_, padding_});
  }
  at::Tensor weight, bias;

 private:
  int64_t in_, out_, kernel_, stride_, padding_;
  double init_scale_;
};

class LinearImpl : public torch::nn::Cloneable<LinearImpl> {
 public:
  LinearImpl(int64_t in, int64_t out, double init_scale) : in_(in), out_(out), init_scale_(init_scale) { reset(); }
  void reset() override {
    weight = register_parameter("weight", at::empty({out_, in_}));
    bias = register_parameter("bias", at::zeros({out_}));
    variance_scaling_(weight, init_scale_, in_, out_);
  }
  at::Tensor forward(const at::Tensor& x) const { return at::linear(x, weight, bias); }
  at::Tensor weight, bias;

 private:
  int64_t in_, out_;
  double init_scale_;
};

class GroupNormImpl : public torch::nn::Cloneable<GroupNormImpl> {
 public:
  GroupNormImpl(int64_t channels, int64_t groups, double eps) : channels_(channels), groups_(groups), eps_(eps) {
    reset();
  }
  void reset() override {
    weight = register_parameter("weight", at::ones({channels_}));
    bias = register_parameter("bias", at::zeros({channels_}));
  }
  at::Tensor forward(const at::Tensor& x) const {
    // Under bf16 autocast x may be bf16: normalise in the weights' float32, as CUDA autocast
    // does (LibTorch 1.13 wants matching dtypes, and its CPU bf16 kernel is ~10x slower).
    at::Tensor in = x.scalar_type() != weight.scalar_type() ? x.to(weight.scalar_type()) : x;
#if TORCH_VERSION_MAJOR < 2
    // LibTorch 1.13's CPU kernel for channels_last input is ~25x slower than a contiguous
    // copy plus the contiguous kernel (measured); the following conv restores channels_last.
    if (in.device().is_cpu() && !in.is_contiguous()) in = in.contiguous();
#endif
    return at::group_norm(in, groups_, weight, bias, eps_);
  }
  at::Tensor weight, bias;

 private:
  int64_t channels_, groups_;
  double eps_;
};

/// GroupNorm → SiLU → conv3×3, + Linear(SiLU(temb)), GroupNorm → SiLU → dropout → conv3×3,
/// plus the input (through a 1×1 conv when the channel count changes).
class ResBlockImpl : public torch::nn::Cloneable<ResBlockImpl> {
 public:
  ResBlockImpl(int64_t in, int64_t out, int64_t temb, const UNetConfig& c)
      : in_(in), out_(out), temb_(temb), groups_(c.groups), eps_(c.norm_eps), dropout_(c.dropout) {
    reset();
  }
  void reset() override {
    norm1 = register_module("norm1", std::make_shared<GroupNormImpl>(in_, groups_, eps_));
    conv1 = register_module("conv1", std::make_shared<Conv2dImpl>(in_, out_, 3, 1, 1, 1.0));
    temb_proj = register_module("temb_proj", std::make_shared<LinearImpl>(temb_, out_, 1.0));
    norm2 = register_module("norm2", std::make_shared<GroupNormImpl>(out_, groups_, eps_));
    conv2 = register_module("conv2", std::make_shared<Conv2dImpl>(out_, out_, 3, 1, 1, 0.0));
    shortcut = nullptr;
    if (in_ != out_) shortcut = register_module("shortcut", std::make_shared<Conv2dImpl>(in_, out_, 1, 1, 0, 1.0));
  }
  /// silu_temb: SiLU(temb), [B, temb] (computed once per forward for all blocks).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& silu_temb) {
    at::Tensor h = conv1->forward(act(norm1->forward(x)));
    at::Tensor t = temb_proj->forward(silu_temb).unsqueeze(-1).unsqueeze(-1);
    h = h.dtype() == at::result_type(h, t) ? h.add_(t) : h + t;  // h is a fresh conv output: add in place
    h = act(norm2->forward(h));
    if (dropout_ > 0.0 && is_training()) h = at::dropout(h, dropout_, /*train=*/true);
    h = conv2->forward(h);
    const at::Tensor skip = shortcut ? shortcut->forward(x) : x;
    return h.dtype() == at::result_type(h, skip) ? h.add_(skip) : h + skip;
  }
  std::shared_ptr<GroupNormImpl> norm1, norm2;
  std::shared_ptr<Conv2dImpl> conv1, conv2, shortcut;
  std::shared_ptr<LinearImpl> temb_proj;

 private:
  int64_t in_, out_, temb_, groups_;
  double eps_, dropout_;
};

/// Self-attention over the H·W positions: GroupNorm, 1×1 q/k/v, softmax(qᵀk/√d) per
/// head (d = C / heads), 1×1 output projection, residual.
class AttentionBlockImpl : public torch::nn::Cloneable<AttentionBlockImpl> {
 public:
  AttentionBlockImpl(int64_t channels, const UNetConfig& c)
      : channels_(channels), heads_(c.num_heads), groups_(c.groups), eps_(c.norm_eps) {
    reset();
  }
  void reset() override {
    norm = register_module("norm", std::make_shared<GroupNormImpl>(channels_, groups_, eps_));
    q = register_module("q", std::make_shared<Conv2dImpl>(channels_, channels_, 1, 1, 0, 1.0));
    k = register_module("k", std::make_shared<Conv2dImpl>(channels_, channels_, 1, 1, 0, 1.0));
    v = register_module("v", std::make_shared<Conv2dImpl>(channels_, channels_, 1, 1, 0, 1.0));
    proj_out = register_module("proj_out", std::make_shared<Conv2dImpl>(channels_, channels_, 1, 1, 0, 0.0));
  }
  at::Tensor forward(const at::Tensor& x) {
    const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), N = H * W;
    const int64_t d = C / heads_;
    const at::Tensor hn = norm->forward(x);
    // [B, C, H, W] → [B·heads, d, N]: a view in both memory formats when heads = 1.
    auto split = [&](const at::Tensor& y) { return y.reshape({B, heads_, d, N}).reshape({B * heads_, d, N}); };
    // 1/√d is folded into q's C×C weights instead of scaling the N×N scores.
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    const at::Tensor qh = split(at::conv2d(hn, q->weight * scale, q->bias * scale));
    const at::Tensor kh = split(k->forward(hn)), vh = split(v->forward(hn));
    // w[i, j] = softmax_j(q_i · k_j / √d); bmm reads the transposed views without copying.
    const at::Tensor w = at::softmax(at::bmm(qh.transpose(1, 2), kh), -1);
    // out[i, c] = Σ_j w[i, j] v[c, j], token-major [B·heads, N, d]: w's gradient then comes
    // back contiguous (no N×N copy in softmax's backward), and the projection is one matmul.
    at::Tensor o = at::bmm(w, vh.transpose(1, 2));
    o = heads_ == 1 ? o.view({B, N, C}) : o.view({B, heads_, N, d}).permute({0, 2, 1, 3}).reshape({B, N, C});
    const at::Tensor y = at::linear(o, proj_out->weight.view({C, C}), proj_out->bias);
    // [B, N, C] is [B, C, H, W] in channels_last strides; x + y keeps x's memory format.
    return x + y.view({B, H, W, C}).permute({0, 3, 1, 2});
  }
  std::shared_ptr<GroupNormImpl> norm;
  std::shared_ptr<Conv2dImpl> q, k, v, proj_out;

 private:
  int64_t channels_, heads_, groups_;
  double eps_;
};

/// Halves H and W: pad right/bottom by one and a stride-2 3×3 conv (the original's
/// asymmetric padding), or 2×2 average pooling.
class DownsampleImpl : public torch::nn::Cloneable<DownsampleImpl> {
 public:
  DownsampleImpl(int64_t channels, bool use_conv) : channels_(channels), use_conv_(use_conv) { reset(); }
  void reset() override {
    conv = nullptr;
    if (use_conv_) conv = register_module("conv", std::make_shared<Conv2dImpl>(channels_, channels_, 3, 2, 0, 1.0));
  }
  at::Tensor forward(const at::Tensor& x) {
    if (!conv) return at::avg_pool2d(x, {2, 2}, {2, 2});
    return conv->forward(at::constant_pad_nd(x, {0, 1, 0, 1}, 0));
  }
  std::shared_ptr<Conv2dImpl> conv;

 private:
  int64_t channels_;
  bool use_conv_;
};

/// Doubles H and W: nearest-neighbour ×2, then a 3×3 conv.
class UpsampleImpl : public torch::nn::Cloneable<UpsampleImpl> {
 public:
  explicit UpsampleImpl(int64_t channels) : channels_(channels) { reset(); }
  void reset() override {
    conv = register_module("conv", std::make_shared<Conv2dImpl>(channels_, channels_, 3, 1, 1, 1.0));
  }
  at::Tensor forward(const at::Tensor& x) {
    const std::vector<int64_t> size{2 * x.size(2), 2 * x.size(3)};
    return conv->forward(at::upsample_nearest2d(x, at::IntArrayRef(size), 2.0, 2.0));
  }
  std::shared_ptr<Conv2dImpl> conv;

 private:
  int64_t channels_;
};

}  // namespace ddpm::unet_detail
