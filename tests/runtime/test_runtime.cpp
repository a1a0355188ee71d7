#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>

#include "ddpm/runtime.hpp"
#include "ddpm/version.hpp"
#include "test_util.hpp"

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

// MAJOR.MINOR.PATCH without leading zeros, optional -pre-release and +build (semver.org, 2.0.0),
// and the version the build declares in CMakeLists.txt's project().
TEST(Runtime, VersionIsSemver) {
  const std::string v = ddpm::version();
  static const std::regex semver(
      R"(^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*))"
      R"((-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$)");
  EXPECT_TRUE(std::regex_match(v, semver)) << "'" << v << "'";
  for (const char* bad : {"0.1", "01.2.3", "1.2.3.4", "v1.2.3", "1.2.3-", ""})
    EXPECT_FALSE(std::regex_match(std::string(bad), semver)) << bad;  // the pattern is strict enough
  std::ifstream cmake(ddpm::test::source_dir() + "/CMakeLists.txt");
  std::stringstream text;
  text << cmake.rdbuf();
  std::smatch m;
  const std::string s = text.str();
  ASSERT_TRUE(std::regex_search(s, m, std::regex(R"(project\(ddpm\s+VERSION\s+([0-9.]+))"))) << "no project() version";
  EXPECT_EQ(v.substr(0, v.find_first_of("-+")), m[1].str());
}
