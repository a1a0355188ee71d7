// bf16 autocast for the trainer's forward passes (trainer_internal.hpp).
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "train/trainer_internal.hpp"

namespace ddpm::trainer_detail {

Autocast::Autocast(bool enabled, c10::Device device) : enabled_(enabled), cuda_(device.is_cuda()) {
  if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const auto type = cuda_ ? at::kCUDA : at::kCPU;
  previous_ = at::autocast::is_autocast_enabled(type);
  at::autocast::set_autocast_dtype(type, at::kBFloat16);
  at::autocast::set_autocast_enabled(type, true);
#else
  if (cuda_) {
    previous_ = at::autocast::is_enabled();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    previous_ = at::autocast::is_cpu_enabled();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
#endif
}

Autocast::~Autocast() {
  if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(cuda_ ? at::kCUDA : at::kCPU, previous_);
#else
  if (cuda_)
    at::autocast::set_enabled(previous_);
  else
    at::autocast::set_cpu_enabled(previous_);
#endif
  at::autocast::clear_cache();
}

}  // namespace ddpm::trainer_detail
