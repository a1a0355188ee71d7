// Reference statistics files (.npz): round trips, files written by NumPy, hostile files.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ddpm/eval/stats_file.hpp"
#include "io/crc32.hpp"
#include "io/npy.hpp"
#include "io/zip.hpp"
#include "test_util.hpp"

using namespace ddpm::eval;
using ddpm::test::error_of;

namespace {

FeatureStats sample_stats(int64_t d) {
  at::manual_seed(9);
  return compute_stats(at::randn({50, d}, at::kDouble), "classifier 'clf.pt' (penultimate, 128-d)");
}

std::string npz_error(const std::string& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  const std::string path = dir + "/" + name;
  ddpm::test::write_bytes(path, bytes);
  return error_of([&] { read_stats_npz(path); });
}

std::string npz_error(const std::string& dir, const std::string& name,
                      const std::vector<std::pair<std::string, std::vector<uint8_t>>>& members) {
  const std::string path = dir + "/" + name;
  ddpm::io::write_zip_stored(path, members);
  return error_of([&] { read_stats_npz(path); });
}

std::vector<uint8_t> npy_with_header(const std::string& dict, size_t data_bytes) {
  std::string text = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(dict.size()) + '\0' + dict;
  text.append(data_bytes, '\0');
  return std::vector<uint8_t>(text.begin(), text.end());
}

bool mentions(const std::string& message, const std::string& part) {
  return message.find(part) != std::string::npos && message.find('\n') == std::string::npos;
}

}  // namespace

TEST(StatsFile, RoundTrip) {
  const std::string dir = ddpm::test::make_temp_dir("stats_file");
  FeatureStats s = sample_stats(7);
  write_stats_npz(dir + "/ref.npz", s);
  FeatureStats r = read_stats_npz(dir + "/ref.npz");
  EXPECT_TRUE(at::equal(r.mu, s.mu));
  EXPECT_TRUE(at::equal(r.sigma, s.sigma));
  EXPECT_EQ(r.count, 50);
  EXPECT_EQ(r.features, s.features);
  EXPECT_NEAR(frechet_distance(r, s), 0.0, 1e-12);
  // Without the optional members, only mu and sigma are written (pytorch-fid's layout).
  s.count = 0;
  s.features.clear();
  write_stats_npz(dir + "/bare.npz", s);
  FeatureStats b = read_stats_npz(dir + "/bare.npz");
  EXPECT_EQ(b.count, 0);
  EXPECT_EQ(b.features, "");
}

TEST(StatsFile, ReadsNumpyCompressedAndStoredFiles) {
  // Written by NumPy (tests/data/make_stats_npz.py): np.savez_compressed, deflate + zip64 local headers.
  FeatureStats c = read_stats_npz(ddpm::test::data_dir() + "/stats_numpy_compressed.npz");
  EXPECT_TRUE(at::equal(c.mu, at::tensor({1.5, -2.0, 3.25}, at::kDouble)));
  EXPECT_TRUE(at::equal(c.sigma, at::tensor({2.0, 0.5, 0.0, 0.5, 1.0, 0.25, 0.0, 0.25, 3.0}, at::kDouble).view({3, 3})));
  EXPECT_EQ(c.count, 0);
  // np.savez (stored) of a float32 mu and a Fortran-order sigma = arange(1, 10).reshape(3, 3).
  FeatureStats f = read_stats_npz(ddpm::test::data_dir() + "/stats_numpy_stored_f32_fortran.npz");
  EXPECT_TRUE(at::equal(f.mu, at::tensor({0.25, 0.5, 0.75}, at::kDouble)));
  EXPECT_TRUE(at::equal(f.sigma, at::arange(1.0, 10.0, at::kDouble).view({3, 3})));
}

TEST(StatsFile, HostileFilesAreOneLineErrors) {
  const std::string dir = ddpm::test::make_temp_dir("stats_file_bad");
  write_stats_npz(dir + "/good.npz", sample_stats(4));
  const std::vector<uint8_t> good = ddpm::test::read_bytes(dir + "/good.npz");

  EXPECT_TRUE(mentions(error_of([&] { read_stats_npz(dir + "/missing.npz"); }), "cannot open"));
  EXPECT_TRUE(mentions(npz_error(dir, "empty.npz", std::vector<uint8_t>{}), "not a zip"));
  EXPECT_TRUE(mentions(npz_error(dir, "text.npz", std::vector<uint8_t>(100, 'x')), "not a zip"));
  // Truncations at every length: never a crash, always one line naming the file.
  for (size_t len = 0; len < good.size(); len += 7) {
    std::string e = npz_error(dir, "cut.npz", std::vector<uint8_t>(good.begin(), good.begin() + len));
    EXPECT_TRUE(mentions(e, "cut.npz")) << len << ": " << e;
  }
  // A flipped byte inside mu's data: the CRC catches it.
  // mu's data starts after the local header (30 + "mu.npy") and the 128-byte .npy header.
  std::vector<uint8_t> flipped = good;
  flipped[30 + 6 + 128 + 5] ^= 0x55;
  EXPECT_TRUE(mentions(npz_error(dir, "flip.npz", flipped), "CRC-32"));

  const auto mu4 = ddpm::io::npy_from_double(at::zeros({4}, at::kDouble));
  const auto sigma4 = ddpm::io::npy_from_double(at::eye(4, at::kDouble));
  EXPECT_TRUE(mentions(npz_error(dir, "nosigma.npz", {{"mu.npy", mu4}}), "no 'sigma'"));
  EXPECT_TRUE(mentions(npz_error(dir, "shape.npz", {{"mu.npy", mu4}, {"sigma.npy", ddpm::io::npy_from_double(at::eye(3, at::kDouble))}}),
                       "sigma must be [4, 4]"));
  EXPECT_TRUE(mentions(npz_error(dir, "rank.npz", {{"mu.npy", sigma4}, {"sigma.npy", sigma4}}), "expected a 1-d"));
  // A header claiming a huge shape over 16 bytes of data: refused before any allocation.
  auto huge = npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 100000000000), }", 16);
  EXPECT_TRUE(mentions(npz_error(dir, "huge.npz", {{"mu.npy", mu4}, {"sigma.npy", huge}}), "truncated or corrupt"));
  auto big_dim = npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (20000,), }", 160000);
  EXPECT_TRUE(mentions(npz_error(dir, "dim.npz", {{"mu.npy", big_dim}, {"sigma.npy", sigma4}}), "exceeds the limit"));
  auto truncated = mu4;
  truncated.resize(truncated.size() - 3);
  EXPECT_TRUE(mentions(npz_error(dir, "short.npz", {{"mu.npy", truncated}, {"sigma.npy", sigma4}}), "truncated"));
  auto text = npy_with_header("{'descr': '<U8', 'fortran_order': False, 'shape': (4,), }", 128);
  EXPECT_TRUE(mentions(npz_error(dir, "dtype.npz", {{"mu.npy", text}, {"sigma.npy", sigma4}}), "unsupported npy dtype"));
  auto nan = ddpm::io::npy_from_double(at::full({4}, NAN, at::kDouble));
  EXPECT_TRUE(mentions(npz_error(dir, "nan.npz", {{"mu.npy", nan}, {"sigma.npy", sigma4}}), "NaN"));
  EXPECT_TRUE(mentions(npz_error(dir, "notnpy.npz", {{"mu.npy", {1, 2, 3}}, {"sigma.npy", sigma4}}), "bad magic"));
}

TEST(Zip, DeflateBombIsRefusedBeforeAllocating) {
  // A central directory entry that claims 2 GiB from a 10-byte deflate member.
  const std::string dir = ddpm::test::make_temp_dir("zip_bomb");
  ddpm::io::write_zip_stored(dir + "/a.zip", {{"mu.npy", std::vector<uint8_t>(10, 0)}});
  std::vector<uint8_t> bytes = ddpm::test::read_bytes(dir + "/a.zip");
  // Central directory: method at +10, uncompressed size at +24 (it starts after the 30 + 6 + 10 bytes).
  const size_t central = 30 + 6 + 10;
  bytes[central + 10] = 8;
  for (int b = 0; b < 4; ++b) bytes[central + 24 + b] = b == 3 ? 0x7F : 0xFF;
  const std::string archive(bytes.begin(), bytes.end());
  ddpm::io::ZipReader zip(archive, "bomb.zip");
  ASSERT_EQ(zip.entries().size(), 1u);
  EXPECT_TRUE(mentions(error_of([&] { zip.read(zip.entries()[0], 0x7FFFFFFF); }), "impossible size"));
  EXPECT_TRUE(mentions(error_of([&] { zip.read(zip.entries()[0], 1000); }), "more than the 1000 allowed"));
}

TEST(Zip, Crc32KnownValue) {
  const std::string text = "123456789";  // the standard check value of CRC-32/ISO-HDLC
  EXPECT_EQ(ddpm::crc32_update(0, text.data(), text.size()), 0xCBF43926u);
}
