#pragma once
// Devices for device-aware tests: every test binary runs its CUDA cases when
// torch::cuda::is_available(), and says "skipped: no CUDA" (a visible GTest skip) otherwise.
#include <c10/core/Device.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <vector>

namespace ddpm::test {
/// CPU, then cuda:0 when there is one.
inline std::vector<c10::Device> test_devices() {
  std::vector<c10::Device> d{c10::Device(c10::kCPU)};
  if (torch::cuda::is_available()) d.emplace_back(c10::kCUDA, 0);
  return d;
}
}  // namespace ddpm::test

/// First statement of a CUDA-only test.
#define DDPM_SKIP_WITHOUT_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no CUDA"
