#include "ddpm/runtime.hpp"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <stdexcept>
#include <thread>

namespace ddpm {

c10::Device parse_device(const std::string& text) {
  if (text == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (text == "cpu") return c10::Device(c10::kCPU);
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      throw std::invalid_argument("--device " + text + ": CUDA is not available in this build or on this machine");
    int index = 0;
    if (text.size() > 5) {
      try {
        size_t used = 0;
        index = std::stoi(text.substr(5), &used);
        if (used != text.size() - 5 || index < 0) throw std::invalid_argument("bad index");
      } catch (const std::exception&) {
        throw std::invalid_argument("--device " + text + ": expected cuda:N with N a device index");
      }
    }
    if (index >= static_cast<int>(torch::cuda::device_count()))
      throw std::invalid_argument("--device " + text + ": only " + std::to_string(torch::cuda::device_count()) +
                                  " CUDA device(s) present");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw std::invalid_argument("--device " + text + ": expected auto, cpu, cuda or cuda:N");
}

void set_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
}

}  // namespace ddpm
