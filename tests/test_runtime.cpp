#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <gtest/gtest.h>

#include <stdexcept>

#include "ddpm/runtime.hpp"
#include "ddpm/version.hpp"

TEST(Runtime, ParsesCpuDevice) {
  EXPECT_EQ(ddpm::parse_device("cpu"), c10::Device(c10::kCPU));
  EXPECT_FALSE(ddpm::parse_device("auto").is_cuda() && !torch::cuda::is_available());
}

TEST(Runtime, RejectsBadDeviceNamingIt) {
  try {
    ddpm::parse_device("gpu0");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("gpu0"), std::string::npos);
  }
}

TEST(Runtime, SetsThreads) {
  ddpm::set_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  ddpm::set_threads(0);
  EXPECT_GE(at::get_num_threads(), 1);
}

TEST(Runtime, VersionIsSemver) { EXPECT_EQ(ddpm::version(), "0.1.0"); }
