// safetensors: round trips, a file written by the Python safetensors library, and hostile files.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstring>

#include "ddpm/io/safetensors.hpp"
#include "test_util.hpp"

using namespace ddpm;
using ddpm::test::error_of;

namespace {

// A file made by hand: 8-byte LE length, the header text, then `data`.
std::string file_of(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return out + header + data;
}

std::string floats(std::initializer_list<float> xs) {
  std::string s;
  for (float x : xs) s.append(reinterpret_cast<const char*>(&x), 4);
  return s;
}

std::string parse_error(const std::string& bytes) {
  return error_of([&] { safetensors::parse(bytes, "bad.safetensors"); });
}

void expect_one_line_naming_file(const std::string& e) {
  EXPECT_NE(e.find("bad.safetensors"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

}  // namespace

TEST(Safetensors, ParsesAHandWrittenFile) {
  const std::string h = R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
                        R"("a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}})";
  const auto c = safetensors::parse(file_of(h, floats({1, 2, 3, 4})), "x");
  ASSERT_EQ(c.tensors.size(), 2u);
  EXPECT_EQ(c.tensors.at("a").sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(at::equal(c.tensors.at("a").flatten(), at::tensor({1.f, 2.f})));
  EXPECT_TRUE(at::equal(c.tensors.at("b"), at::tensor({3.f, 4.f})));
  EXPECT_EQ(c.metadata.at("format"), "pt");
}

TEST(Safetensors, ReadsTheFileOfThePythonLibrary) {
  // Written by safetensors.torch.save_file (scripts/make-ddpm-reference.py).
  const auto c = safetensors::read_file(test::data_dir() + "/ddpm_ref/original/io.safetensors");
  ASSERT_EQ(c.tensors.size(), 3u);
  EXPECT_EQ(c.tensors.at("x").sizes(), (std::vector<int64_t>{2, 3, 16, 16}));
  EXPECT_EQ(c.tensors.at("x").scalar_type(), at::kFloat);
  EXPECT_EQ(c.tensors.at("t").scalar_type(), at::kLong);
  EXPECT_EQ(c.tensors.at("t")[1].item<int64_t>(), 817);
}

TEST(Safetensors, RoundTripsEveryDtypeBitExactly) {
  at::manual_seed(3);
  std::map<std::string, at::Tensor> in{
      {"f64", at::randn({3, 2}, at::kDouble)},          {"f32", at::randn({4, 1, 2})},
      {"f16", at::randn({5}).to(at::kHalf)},            {"bf16", at::randn({2, 3}).to(at::kBFloat16)},
      {"i64", at::randint(-1000, 1000, {7}, at::kLong)}, {"i32", at::randint(-9, 9, {2, 2}, at::kInt)},
      {"u8", at::randint(0, 255, {6}, at::kByte)},      {"bool", at::rand({3}) > 0.5},
      {"scalar", at::tensor(2.5)},                      {"empty", at::zeros({0, 3})},
      {"strided", at::randn({4, 4}).t()},
  };
  const std::string bytes = safetensors::serialize(in, {{"k", "v \"quoted\""}});
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u) << "header padded to a multiple of 8";
  const auto out = safetensors::parse(bytes, "mem");
  ASSERT_EQ(out.tensors.size(), in.size());
  for (const auto& [k, t] : in) {
    ASSERT_TRUE(out.tensors.count(k)) << k;
    EXPECT_EQ(out.tensors.at(k).scalar_type(), t.scalar_type()) << k;
    EXPECT_EQ(out.tensors.at(k).sizes(), t.sizes()) << k;
    EXPECT_TRUE(at::equal(out.tensors.at(k), t)) << k;
  }
  EXPECT_EQ(out.metadata.at("k"), "v \"quoted\"");
  // Writing what was read gives the same bytes.
  EXPECT_EQ(safetensors::serialize(out.tensors, out.metadata), bytes);
}

TEST(Safetensors, WriteFileThenReadFile) {
  const std::string dir = test::make_temp_dir("st");
  const at::Tensor t = at::arange(12, at::kFloat).view({3, 4});
  safetensors::write_file(dir + "/a.safetensors", {{"w", t}});
  EXPECT_TRUE(at::equal(safetensors::read_file(dir + "/a.safetensors").tensors.at("w"), t));
  const std::string e = error_of([&] { safetensors::read_file(dir + "/missing.safetensors"); });
  EXPECT_NE(e.find("missing.safetensors"), std::string::npos) << e;
}

TEST(Safetensors, EveryTruncationIsAnError) {
  const std::string good = safetensors::serialize({{"a", at::randn({3, 5})}, {"b", at::randn({2})}});
  for (size_t len = 0; len < good.size(); ++len) {
    const std::string e = parse_error(good.substr(0, len));
    ASSERT_FALSE(e.empty()) << "truncated to " << len << " bytes was accepted";
    expect_one_line_naming_file(e);
  }
}

TEST(Safetensors, HostileHeadersAreOneLineErrors) {
  const std::string d8 = floats({1, 2});
  struct Case {
    std::string header, data, expect;
  };
  const std::vector<Case> cases{
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
       d8, "overlaps"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", d8, "outside"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", d8, "outside"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8, "belong to no tensor"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d8, "belong to no tensor"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8, "need 12 bytes"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", d8, "need more"},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8, "negative"},
      {R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", d8, "integers"},
      {R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", d8, "unsupported dtype 'Q4'"},
      {R"({"a":{"dtype":"F32","shape":[2]}})", d8, "missing \"data_offsets\""},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", d8, "exactly"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       d8, "duplicate key"},
      {"{\"\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d8, "UTF-8"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x)", d8, "trailing"},
      {R"([1,2])", "", "does not start with '{'"},
      {R"({"__metadata__":{"k":1}})", "", "not a string"},
      {std::string(40, '[') , "", "does not start"},
      {"{\"a\":" + std::string(40, '['), "", "nesting"},
  };
  for (const auto& c : cases) {
    const std::string e = parse_error(file_of(c.header, c.data));
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.header << " → " << e;
    expect_one_line_naming_file(e);
  }
}

TEST(Safetensors, HugeHeaderLengthsAllocateNothing) {
  std::string bytes(16, ' ');
  const uint64_t huge[] = {uint64_t{1} << 62, safetensors::kMaxHeaderBytes + 1, 9};  // 9 > the 8 bytes that follow
  for (uint64_t n : huge) {
    std::memcpy(bytes.data(), &n, 8);
    const std::string e = parse_error(bytes);
    EXPECT_TRUE(e.find("100 MB") != std::string::npos || e.find("truncated") != std::string::npos) << e;
    expect_one_line_naming_file(e);
  }
}

TEST(Safetensors, RandomCorruptionNeverCrashes) {
  const std::string good = safetensors::serialize({{"a", at::randn({3, 5})}, {"b", at::randn({2}).to(at::kHalf)}});
  uint64_t n = 0;
  std::memcpy(&n, good.data(), 8);
  uint32_t state = 12345;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bad = good;
    for (int k = 0; k < 3; ++k) {
      state = state * 1664525u + 1013904223u;
      const size_t at = 8 + state % n;  // corrupt the header
      state = state * 1664525u + 1013904223u;
      bad[at] = static_cast<char>(state >> 24);
    }
    try {
      safetensors::parse(bad, "bad.safetensors");
    } catch (const std::invalid_argument& e) {
      expect_one_line_naming_file(e.what());
    }
  }
}
