#pragma once
// Small helpers of the sampler tests against closed forms (test_sampler_exact, test_solvers).
#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ddpm/math/diffusion.hpp"
#include "ddpm/math/schedule.hpp"

namespace ddpm::test {

inline NoiseSchedule make_schedule(const std::string& kind, int64_t T = 1000, bool ztsnr = false) {
  ScheduleConfig c;
  c.kind = kind;
  c.timesteps = T;
  c.zero_terminal_snr = ztsnr;
  return NoiseSchedule(c);
}

/// A tensor's values as float64 on the host.
inline std::vector<double> values(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kDouble).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

inline const char* name_of(Prediction p) { return p == Prediction::Epsilon ? "eps" : p == Prediction::X0 ? "x0" : "v"; }

/// Slope of log(err) against log(steps): −order for a method of that order.
inline double loglog_slope(const std::vector<double>& steps, const std::vector<double>& err) {
  const double n = static_cast<double>(steps.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const double x = std::log(steps[i]), y = std::log(err[i]);
    sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

}  // namespace ddpm::test
