// write_file_atomically: the new bytes or the old file, never a mix, never a leftover .tmp.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "ddpm/io/atomic_file.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(AtomicFile, WritesAndReplacesWithoutLeavingATemporary) {
  const std::string dir = ddpm::test::make_temp_dir("atomic");
  const std::string path = dir + "/a.bin";
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
  ddpm::io::write_file_atomically(path, big);
  EXPECT_EQ(slurp(path), big);
  ddpm::io::write_file_atomically(path, "short");
  EXPECT_EQ(slurp(path), "short");
  ddpm::io::write_file_atomically(path, "");
  EXPECT_EQ(fs::file_size(path), 0u);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(AtomicFile, FailureNamesThePathAndKeepsTheOldState) {
  const std::string dir = ddpm::test::make_temp_dir("atomic-fail");
  // A missing directory: open fails.
  try {
    ddpm::io::write_file_atomically(dir + "/missing/x.txt", "data");
    ADD_FAILURE() << "no error for a missing directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/missing/x.txt"), std::string::npos) << e.what();
  }
  // The target is a non-empty directory: rename fails after the bytes were written and synced;
  // the temporary is removed and the directory is untouched.
  const std::string target = dir + "/target";
  fs::create_directories(target + "/inside");
  EXPECT_THROW(ddpm::io::write_file_atomically(target, "data"), std::runtime_error);
  EXPECT_FALSE(fs::exists(target + ".tmp"));
  EXPECT_TRUE(fs::is_directory(target + "/inside"));
  EXPECT_THROW(ddpm::io::sync_directory(dir + "/no-such-dir"), std::runtime_error);
  EXPECT_NO_THROW(ddpm::io::sync_directory(dir));
}

}  // namespace
