// torch.save state dicts read without Python: files written by PyTorch 2.x (zip and legacy formats).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "ddpm/io/safetensors.hpp"
#include "ddpm/io/torch_file.hpp"
#include "test_util.hpp"

using namespace ddpm;
using ddpm::test::error_of;

namespace {
std::string ref_path(const std::string& name) { return test::data_dir() + "/ddpm_ref/original/" + name; }
}  // namespace

TEST(TorchFile, ZipAndLegacyFormatsMatchTheSafetensorsCopy) {
  const auto expected = safetensors::read_file(ref_path("io.safetensors")).tensors;
  for (const char* file : {"io.pt", "io-legacy.pt"}) {
    const auto got = torch_file::read_state_dict(ref_path(file));
    ASSERT_EQ(got.size(), expected.size()) << file;
    for (const auto& [k, t] : expected) {
      ASSERT_TRUE(got.count(k)) << file << " " << k;
      EXPECT_EQ(got.at(k).scalar_type(), t.scalar_type()) << file << " " << k;
      EXPECT_TRUE(at::equal(got.at(k), t)) << file << " " << k;
    }
  }
}

TEST(TorchFile, ReadsAModuleStateDict) {
  // An OrderedDict with _metadata (BUILD), shared storages' memo references, views with offsets.
  const auto sd = torch_file::read_state_dict(ref_path("model.ckpt"));
  EXPECT_EQ(sd.at("conv_in.weight").sizes(), (std::vector<int64_t>{32, 3, 3, 3}));
  EXPECT_EQ(sd.at("temb.dense.1.weight").sizes(), (std::vector<int64_t>{128, 128}));
  int64_t n = 0;
  for (const auto& kv : sd) n += kv.second.numel();
  EXPECT_EQ(n, 702499);  // printed by scripts/make-ddpm-reference.py
}

TEST(TorchFile, TruncatedOrCorruptFilesAreOneLineErrors) {
  const std::string dir = test::make_temp_dir("tf");
  for (const char* file : {"io.pt", "io-legacy.pt"}) {
    const std::string good = test::read_string(ref_path(file));
    std::vector<size_t> cuts{0, 1, 7, 100, good.size() / 3, good.size() / 2, good.size() - 30, good.size() - 1};
    for (size_t cut : cuts) {
      const std::string e = error_of([&] { torch_file::parse_state_dict(good.substr(0, cut), "bad.pt"); });
      EXPECT_NE(e.find("bad.pt"), std::string::npos) << file << " cut " << cut << ": " << e;
      EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    }
    // Flipped bytes: an error or a (wrong) result, never a crash.
    uint32_t state = 7;
    for (int trial = 0; trial < 500; ++trial) {
      std::string bad = good;
      for (int k = 0; k < 4; ++k) {
        state = state * 1664525u + 1013904223u;
        bad[state % bad.size()] = static_cast<char>(state >> 24);
      }
      const std::string e = error_of([&] { torch_file::parse_state_dict(bad, "bad.pt"); });
      if (!e.empty()) EXPECT_NE(e.find("bad.pt"), std::string::npos) << e;
    }
  }
  EXPECT_NE(error_of([] { torch_file::read_state_dict("/nonexistent/x.pt"); }).find("/nonexistent/x.pt"), std::string::npos);
}

TEST(TorchFile, RefusesForeignGlobals) {
  // pickle protocol 2: GLOBAL 'os system', ('echo',), REDUCE, STOP — must not be called.
  static const char evil[] = "\x80\x02" "cos\nsystem\n" "X\x04\x00\x00\x00" "echo" "\x85" "R.";
  const std::string p(evil, sizeof evil - 1);
  std::string legacy_magic = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
  const std::string e = error_of([&] { torch_file::parse_state_dict(p, "evil.pt"); });
  EXPECT_NE(e.find("evil.pt"), std::string::npos) << e;
  const std::string e2 = error_of([&] { torch_file::parse_state_dict(legacy_magic + "\x80\x02" "K\x01." "\x80\x02}." + p, "evil.pt"); });
  EXPECT_NE(e2.find("unsupported global 'os.system'"), std::string::npos) << e2;
}
