#include "ddpm/train/ema.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace ddpm {

EMA::EMA(std::shared_ptr<torch::nn::Module> model, std::shared_ptr<torch::nn::Module> shadow, EmaOptions options)
    : model_(std::move(model)), shadow_(std::move(shadow)), options_(options) {
  if (!model_ || !shadow_) throw std::invalid_argument("EMA: model and shadow must not be null");
  if (!(options_.decay >= 0.0 && options_.decay <= 1.0))
    throw std::invalid_argument("ema-decay " + std::to_string(options_.decay) + ": must be in [0, 1]");
  if (!(options_.power > 0.0)) throw std::invalid_argument("ema-power: must be > 0");
  auto mp = model_->named_parameters(), sp = shadow_->named_parameters();
  auto mb = model_->named_buffers(), sb = shadow_->named_buffers();
  if (mp.size() != sp.size() || mb.size() != sb.size())
    throw std::invalid_argument("EMA: shadow module does not have the model's architecture");
  for (const auto& item : mp) {
    const at::Tensor* s = sp.find(item.key());
    if (!s || !s->sizes().equals(item.value().sizes()))
      throw std::invalid_argument("EMA: shadow module lacks parameter '" + item.key() + "' of the model's shape");
  }
  shadow_->eval();
  for (auto& p : shadow_->parameters()) p.set_requires_grad(false);
  copy_from_model();
}

double EMA::decay_at(int64_t n) const {
  const double d = static_cast<double>(n);
  switch (options_.warmup) {
    case EmaWarmup::None: return options_.decay;
    case EmaWarmup::Rational: return std::min(options_.decay, (1.0 + d) / (10.0 + d));
    case EmaWarmup::Power: return std::min(options_.decay, 1.0 - std::pow(1.0 + d, -options_.power));
  }
  return options_.decay;
}

void EMA::copy_from_model() {
  c10::NoGradGuard no_grad;
  auto mp = model_->parameters(), sp = shadow_->parameters();
  for (size_t i = 0; i < mp.size(); ++i) sp[i].copy_(mp[i]);
  auto mb = model_->buffers(), sb = shadow_->buffers();
  for (size_t i = 0; i < mb.size(); ++i) sb[i].copy_(mb[i]);
}

void EMA::update() {
  c10::NoGradGuard no_grad;
  const double decay = decay_at(num_updates_);
  auto mp = model_->parameters(), sp = shadow_->parameters();
  // shadow + (1 − d)(model − shadow) = d·shadow + (1 − d)·model
  for (size_t i = 0; i < mp.size(); ++i) sp[i].lerp_(mp[i].detach().to(sp[i].device()), 1.0 - decay);
  auto mb = model_->buffers(), sb = shadow_->buffers();
  for (size_t i = 0; i < mb.size(); ++i) sb[i].copy_(mb[i]);
  ++num_updates_;
}

}  // namespace ddpm
