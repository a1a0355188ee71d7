// Untrusted files past the bounds of ddpm/util/limits.hpp, each case of issue #27 (items 2, 3, 5,
// 6, 11) and #28 (quadratic duplicate-key checks, the checkpoint's TOML) rebuilt here at run time
// (small versions are in tests/data/fuzz/, replayed by test_faults' FuzzCorpus):
// every one must end as a one-line error naming the file (exit 2 from a tool), never a crash,
// and the bombs must stay under a stated memory bound, measured as the peak RSS of a child.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stb_image_resize.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ddpm/data/dataset.hpp"
#include "ddpm/data/image.hpp"
#include "ddpm/eval/stats_file.hpp"
#include "io/json.hpp"
#include "ddpm/io/safetensors.hpp"
#include "io/toml.hpp"
#include "ddpm/io/torch_file.hpp"
#include "ddpm/pipeline/config.hpp"
#include "ddpm/util/limits.hpp"
#include "io/zip.hpp"
#include "test_util.hpp"

namespace {

namespace fs = std::filesystem;
using namespace ddpm::test;  // the shared helpers of test_util.hpp


std::string repeat(const std::string& s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One line naming `where`, as the tools print it (exit 2).
void expect_one_line_naming(const std::string& msg, const std::string& where) {
  EXPECT_FALSE(msg.empty());
  EXPECT_NE(msg.find(where), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

// `prefix` then `zeros` zero bytes, compressed by zlib (window_bits 31: gzip; -15: raw deflate),
// fed in 1 MiB pieces so that a GiB of zeros never sits in this process's memory.
std::vector<uint8_t> compress_zeros(const std::vector<uint8_t>& prefix, uint64_t zeros, int window_bits) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("zlib");
  std::vector<uint8_t> out, chunk(1 << 16), zero(1 << 20, 0);
  auto feed = [&](const uint8_t* data, size_t n, int flush) {
    z.next_in = const_cast<Bytef*>(data);
    z.avail_in = static_cast<uInt>(n);
    do {
      z.next_out = chunk.data();
      z.avail_out = static_cast<uInt>(chunk.size());
      deflate(&z, flush);
      out.insert(out.end(), chunk.data(), chunk.data() + (chunk.size() - z.avail_out));
    } while (z.avail_out == 0);
  };
  feed(prefix.data(), prefix.size(), Z_NO_FLUSH);
  for (uint64_t left = zeros; left > 0;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, zero.size()));
    feed(zero.data(), n, Z_NO_FLUSH);
    left -= n;
  }
  feed(nullptr, 0, Z_FINISH);
  deflateEnd(&z);
  return out;
}

uint32_t crc_of(const std::vector<uint8_t>& prefix, uint64_t zeros) {
  uLong crc = crc32(0L, prefix.data(), static_cast<uInt>(prefix.size()));
  const std::vector<uint8_t> zero(1 << 20, 0);
  for (uint64_t left = zeros; left > 0;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, zero.size()));
    crc = crc32(crc, zero.data(), static_cast<uInt>(n));
    left -= n;
  }
  return static_cast<uint32_t>(crc);
}

// A zip archive of deflated members (method 8): name, the member's bytes as prefix + zeros,
// and the size its headers declare (the true size unless a test lies).
struct DeflatedMember {
  std::string name;
  std::vector<uint8_t> prefix;
  uint64_t zeros = 0;
  int64_t declared_size = -1;
};
void put16(std::vector<uint8_t>& b, uint32_t v) {
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}
void put32(std::vector<uint8_t>& b, uint32_t v) {
  put16(b, v & 0xFFFF);
  put16(b, v >> 16);
}
void write_deflated_zip(const std::string& path, const std::vector<DeflatedMember>& members) {
  std::vector<uint8_t> out, dir;
  for (const DeflatedMember& m : members) {
    const std::vector<uint8_t> data = compress_zeros(m.prefix, m.zeros, -15);
    const uint64_t size = m.declared_size >= 0 ? static_cast<uint64_t>(m.declared_size) : m.prefix.size() + m.zeros;
    const uint32_t crc = crc_of(m.prefix, m.zeros), offset = static_cast<uint32_t>(out.size());
    for (auto* b : {&out, &dir}) {
      const bool central = b == &dir;
      put32(*b, central ? 0x02014b50 : 0x04034b50);
      if (central) put16(*b, 20);
      put16(*b, 20);
      put16(*b, 0);
      put16(*b, 8);  // deflate
      put16(*b, 0);
      put16(*b, 0x21);
      put32(*b, crc);
      put32(*b, static_cast<uint32_t>(data.size()));
      put32(*b, static_cast<uint32_t>(size));
      put16(*b, static_cast<uint32_t>(m.name.size()));
      put16(*b, 0);
      if (central) {
        put16(*b, 0);
        put16(*b, 0);
        put16(*b, 0);
        put32(*b, 0);
        put32(*b, offset);
      }
      b->insert(b->end(), m.name.begin(), m.name.end());
    }
    out.insert(out.end(), data.begin(), data.end());
  }
  const uint32_t dir_offset = static_cast<uint32_t>(out.size());
  out.insert(out.end(), dir.begin(), dir.end());
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint32_t>(members.size()));
  put16(out, static_cast<uint32_t>(members.size()));
  put32(out, static_cast<uint32_t>(dir.size()));
  put32(out, dir_offset);
  put16(out, 0);
  write_bytes(path, out);
}

// A .npy header (version 1.0) for a float64 array of `shape`, padded to 64 bytes as numpy does.
std::vector<uint8_t> npy_f8_header(const std::string& shape) {
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - 10 - dict.size() - 1, ' ');
  dict.push_back('\n');
  const std::string all = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(dict.size()) + '\0' + dict;
  return std::vector<uint8_t>(all.begin(), all.end());
}

// ================================================================ TOML (items 2, 11; #28)

TEST(HostileToml, DottedKeyOf200kPartsIsAnErrorNotACrash) {
  // Item 2: `a.a.a…` with 200k parts (400 KB, under the 1 MiB cap) crashed --config with SIGSEGV.
  const std::string key = "a" + repeat(".a", 200000);
  ASSERT_LT(key.size() + 5, ddpm::limits::kMaxTomlBytes);
  for (const std::string& text : {key + " = 1\n", "[" + key + "]\n", "[[" + key + "]]\n",
                                  "x = " + repeat("{a = ", 100000) + "1" + repeat("}", 100000) + "\n",
                                  "x = " + repeat("[", 100000) + repeat("]", 100000) + "\n"}) {
    const std::string msg = error_of([&] { ddpm::toml::parse(text); });
    EXPECT_NE(msg.find("line 1: "), std::string::npos) << msg.substr(0, 200);
    EXPECT_NE(msg.find("64"), std::string::npos) << msg.substr(0, 200);
  }
  // Within each construct's bound, but too deep together: header, dotted key, inline table, array.
  const std::string mixed = "[" + repeat("h.", 19) + "h]\n" + repeat("k.", 19) + "k = {" + repeat("i.", 20) +
                            "i = [[[1]]]}\n";
  EXPECT_NE(error_of([&] { ddpm::toml::parse(mixed); }).find("line 2: "), std::string::npos);
  // Nesting a config can legitimately have still reads.
  const ddpm::toml::Value ok = ddpm::toml::parse("[a.b]\nc.d = {e = [1, [2, {f = 3}]]}\n");
  EXPECT_EQ(ok.find("a")->find("b")->find("c")->find("d")->find("e")->array[1].array[1].find("f")->integer, 3);

  // As a config file, and through a tool: one line naming the file, exit 2.
  const std::string dir = ddpm::test::make_temp_dir("ddpm-toml-deep");
  const std::string path = dir + "/deep.toml";
  write_bytes(path, key + " = 1\n");
  expect_one_line_naming(error_of([&] { ddpm::config_from_file(path); }), path);
  const auto r = run_command(tool_path("ddpm-schedule") + " --config " + path);
  EXPECT_EQ(r.exit_code, 2) << r.output.substr(0, 300);
  EXPECT_NE(r.output.find(path), std::string::npos) << r.output.substr(0, 300);
  fs::remove_all(dir);
}

TEST(HostileToml, ConfigStoredInACheckpointIsCappedLikeAFile) {
  // #28: the TOML a checkpoint carries had no size cap; config_from_toml is what reads it.
  const std::string big = repeat("# padding padding padding padding padding padding padding\n", 20000);
  ASSERT_GT(big.size(), ddpm::limits::kMaxTomlBytes);
  const std::string msg = error_of([&] { ddpm::config_from_toml(big); });
  EXPECT_NE(msg.find("exceeds the limit of 1048576"), std::string::npos) << msg;
  EXPECT_EQ(msg.rfind("config: ", 0), 0u) << msg;
}

TEST(HostileToml, DuplicateKeyChecksAreNotQuadratic) {
  // #28: each key was searched for linearly in its table: 110k keys (1 MB, under the cap)
  // took seconds; an index makes it O(n log n).
  std::string text;
  const int n = 110000;
  for (int i = 0; i < n; ++i) text += "k" + std::to_string(i) + "=1\n";
  ASSERT_LT(text.size(), ddpm::limits::kMaxTomlBytes);
  ddpm::toml::Value doc;
  const double s = seconds_of([&] { doc = ddpm::toml::parse(text); });
  EXPECT_EQ(doc.table.size(), static_cast<size_t>(n));
  std::printf("[ measured ] TOML of %d keys: %.3f s\n", n, s);
  EXPECT_LT(s, 2.0) << "parsing " << n << " keys took " << s << " s";
  // Duplicates are still found, wherever they are defined from.
  EXPECT_NE(error_of([&] { ddpm::toml::parse(text + "k77=2\n"); }).find("line 110001: key 'k77' is defined twice"),
            std::string::npos);
  EXPECT_NE(error_of([] { ddpm::toml::parse("a.b = 1\na.b = 2\n"); }).find("line 2"), std::string::npos);
  EXPECT_NE(error_of([] { ddpm::toml::parse("[t]\nx = 1\n[t]\n"); }).find("line 3"), std::string::npos);
  EXPECT_NE(error_of([] { ddpm::toml::parse("a = {b = 1, b = 2}\n"); }).find("defined twice"), std::string::npos);
  const ddpm::toml::Value arr = ddpm::toml::parse("[[t]]\nx = 1\n[[t]]\nx = 2\n[t.u]\ny = 3\n");
  ASSERT_EQ(arr.find("t")->array.size(), 2u);
  EXPECT_EQ(arr.find("t")->array[1].find("u")->find("y")->integer, 3);
}

TEST(HostileToml, CrOnlyLineEndingsAreRefusedNamingFileAndLine) {
  // Item 11: a config saved with CR-only line endings read as one comment line, and ddpm-train
  // ran on the defaults with exit 0. TOML lines end in LF or CRLF.
  const std::string text = "# libddpm run configuration\rlr = 0.5\rbatch-size = 7\r";
  const std::string msg = error_of([&] { ddpm::toml::parse(text); });
  EXPECT_NE(msg.find("line 1: carriage return without a line feed"), std::string::npos) << msg;
  for (const char* bad : {"lr = 0.5\rbatch-size = 7\n", "s = \"\"\"a\rb\"\"\"\n", "# c\r"})
    EXPECT_NE(error_of([&] { ddpm::toml::parse(bad); }).find("CR-only"), std::string::npos) << bad;
  // CRLF is valid TOML and reads as LF.
  const ddpm::toml::Value crlf = ddpm::toml::parse("# c\r\nlr = 0.5\r\ns = '''\r\nx\r\n'''\r\n");
  EXPECT_EQ(crlf.find("lr")->floating, 0.5);

  const std::string dir = ddpm::test::make_temp_dir("ddpm-toml-cr");
  const std::string path = dir + "/cr.toml";
  write_bytes(path, text);
  const std::string file_msg = error_of([&] { ddpm::config_from_file(path); });
  expect_one_line_naming(file_msg, path);
  EXPECT_NE(file_msg.find("line 1"), std::string::npos) << file_msg;
  const auto r = run_command(tool_path("ddpm-train") + " --config " + path + " --dry-run --threads 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(path), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("CR-only"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

// ================================================================ JSON (item 5)

TEST(HostileJson, DuplicateKeyCheckIsNotQuadratic) {
  // Item 5: 80k keys took 8.2 s and 160k keys 33 s in a 2.5 MB safetensors header.
  std::string text = "{";
  const int n = 160000;
  for (int i = 0; i < n; ++i) text += "\"k" + std::to_string(i) + "\":0,";
  text.back() = '}';
  ddpm::json::Value v;
  const double s = seconds_of([&] { v = ddpm::json::parse(text); });
  EXPECT_EQ(v.members().size(), static_cast<size_t>(n));
  std::printf("[ measured ] JSON object of %d keys: %.3f s\n", n, s);
  EXPECT_LT(s, 2.0) << "parsing " << n << " keys took " << s << " s";
  // The first key that repeats an earlier one is reported, at its byte.
  const std::string dup = R"({"a":1,"b":{"x":1,"x":2},"b":3})";
  EXPECT_NE(error_of([&] { ddpm::json::parse(dup); }).find("JSON at byte 18: duplicate key \"x\""), std::string::npos);
  const std::string dup2 = R"({"z":1,"b":2,"z":3,"b":4})";
  EXPECT_NE(error_of([&] { ddpm::json::parse(dup2); }).find("JSON at byte 13: duplicate key \"z\""), std::string::npos);
}

TEST(HostileJson, ArrayOfOnesStaysWithinItsMemoryBound) {
  // Item 5: a 25 MB safetensors header of [1,1,…] took 2.7 GB. Bound: 256 MB.
  const std::string dir = ddpm::test::make_temp_dir("ddpm-json-ones");
  const std::string header = "{\"__metadata__\":{},\"x\":[" + repeat("1,", 12500000) + "1]}";
  std::string file(8, '\0');
  for (int b = 0; b < 8; ++b) file[b] = static_cast<char>((static_cast<uint64_t>(header.size()) >> (8 * b)) & 0xFF);
  file += header;
  const std::string path = dir + "/ones.safetensors";
  write_bytes(path, file);
  file.clear();
  file.shrink_to_fit();
  const Measured m = run_forked([&] { ddpm::safetensors::read_file(path); }, 2048);
  EXPECT_EQ(m.exit_code, 0) << "0 = refused with an error; 1 = accepted, 2 = out of memory";
  expect_one_line_naming(m.output, path);
  EXPECT_NE(m.output.find("values"), std::string::npos) << m.output;
  std::printf("[ measured ] [1,1,...] 25 MB header: peak RSS %.0f MB above the parent\n", m.peak_rss_mb);
  EXPECT_LT(m.peak_rss_mb, 256 + 25 * 2) << "the file (25 MB, read once and parsed from there) + 256 MB";
  // Under the value budget, an array reads (and costs ~100 bytes a value).
  EXPECT_EQ(ddpm::json::parse("[" + repeat("1,", 1000) + "1]").items().size(), 1001u);
  fs::remove_all(dir);
}

// ================================================================ pickle (item 2)

TEST(HostilePickle, DeepTuplesAreAnErrorNotACrash) {
  // Item 2: a data.pkl of \x80\x02N + 200,000 TUPLE1 bytes crashed with SIGSEGV, also inside a
  // diffusers .bin or a checkpoint (both zip archives holding <archive>/data.pkl).
  const std::string pkl = "\x80\x02N" + std::string(200000, '\x85') + ".";
  const std::string msg = error_of([&] { ddpm::torch_file::parse_state_dict(pkl, "deep.pkl"); });
  expect_one_line_naming(msg, "deep.pkl");
  EXPECT_NE(msg.find("nested more than 256 deep"), std::string::npos) << msg;

  const std::string dir = ddpm::test::make_temp_dir("ddpm-pickle-deep");
  const std::string path = dir + "/diffusion_pytorch_model.bin";
  ddpm::io::write_zip_stored(path, {{"archive/data.pkl", std::vector<uint8_t>(pkl.begin(), pkl.end())},
                                    {"archive/byteorder", {'l', 'i', 't', 't', 'l', 'e'}}});
  const std::string zmsg = error_of([&] { ddpm::torch_file::read_state_dict(path); });
  expect_one_line_naming(zmsg, path);
  EXPECT_NE(zmsg.find("nested"), std::string::npos) << zmsg;
  // Nesting a state dict has (dicts of tuples of lists) still reads: 100 levels of lists.
  const std::string lists = "\x80\x02" + repeat("]", 100) + repeat("a", 99) + ".";
  EXPECT_EQ(error_of([&] { ddpm::torch_file::parse_state_dict(lists, "ok.pkl"); }).find("nested"), std::string::npos);
  fs::remove_all(dir);
}

TEST(HostilePickle, ListsChainedThroughTheMemoAreReleasedWithoutRecursion) {
  // A chain built top-down (each list appended to its parent while still empty, through the memo)
  // is 200k deep although no container ever looked deeper than 2 when filled: the depth bound
  // does not see it, so releasing it must not recurse.
  auto le32 = [](uint32_t v) { return std::string{char(v), char(v >> 8), char(v >> 16), char(v >> 24)}; };
  std::string pkl = "\x80\x02]r" + le32(0);
  for (uint32_t k = 1; k <= 200000; ++k) pkl += "j" + le32(k - 1) + "]r" + le32(k) + "ab";
  pkl += ".";
  const std::string msg = error_of([&] { ddpm::torch_file::parse_state_dict(pkl, "chain.pkl"); });
  expect_one_line_naming(msg, "chain.pkl");
}

// ================================================================ images (item 3)

TEST(HostileImage, ResizeCropIsTheCropOfTheFullResize) {
  // The crop is resampled alone now; each pixel must be what stbir's full resize had there.
  std::mt19937 rng(7);
  // windowed: the crop needs under half of the rows or columns, which stbir then gets alone
  // (its offset is rounded differently as a float there: ±1 allowed, in under 2% of the values).
  struct Case { int w, h, c, out_h, out_w; bool windowed; };
  for (const Case& k : {Case{37, 23, 3, 16, 16, false}, Case{23, 37, 1, 16, 16, false}, Case{64, 64, 4, 16, 16, false},
                        Case{10, 7, 3, 32, 32, false}, Case{100, 30, 3, 20, 40, false}, Case{64, 48, 3, 48, 64, false},
                        Case{64, 48, 3, 30, 64, false}, Case{5, 300, 1, 24, 12, true}, Case{400, 10, 3, 16, 16, true},
                        Case{3000, 40, 1, 8, 8, true}}) {
    ddpm::Image im;
    im.width = k.w, im.height = k.h, im.channels = k.c;
    im.pixels.resize(static_cast<size_t>(k.w) * k.h * k.c);
    for (auto& p : im.pixels) p = static_cast<uint8_t>(rng() & 0xFF);
    const ddpm::Image got = ddpm::resize_center_crop(im, k.out_h, k.out_w);
    // Reference: the whole image scaled to cover the target, then its centre cut out.
    const double scale = std::max(double(k.out_h) / k.h, double(k.out_w) / k.w);
    const int sh = std::max(k.out_h, int(std::lround(k.h * scale))), sw = std::max(k.out_w, int(std::lround(k.w * scale)));
    std::vector<uint8_t> full(static_cast<size_t>(sw) * sh * k.c);
    if (sh == k.h && sw == k.w) full = im.pixels;
    else ASSERT_TRUE(stbir_resize_uint8(im.pixels.data(), k.w, k.h, 0, full.data(), sw, sh, 0, k.c));
    const int top = (sh - k.out_h) / 2, left = (sw - k.out_w) / 2;
    ASSERT_EQ(got.width, k.out_w);
    ASSERT_EQ(got.height, k.out_h);
    int differ = 0, most = 0;
    for (int y = 0; y < k.out_h; ++y)
      for (int x = 0; x < k.out_w * k.c; ++x) {
        const int d = std::abs(got.pixels[static_cast<size_t>(y) * k.out_w * k.c + x] -
                               full[(static_cast<size_t>(top + y) * sw + left) * k.c + x]);
        differ += d != 0;
        most = std::max(most, d);
      }
    const bool windowed = k.windowed;
    EXPECT_LE(most, windowed ? 1 : 0) << k.w << "x" << k.h << " -> " << k.out_w << "x" << k.out_h;
    EXPECT_LE(differ, windowed ? k.out_w * k.out_h * k.c / 50 : 0) << k.w << "x" << k.h;
  }
}

TEST(HostileImage, OneByTwoTo24IsResizedWithinBounds) {
  // Item 3: a 1×2^24 gray image (a 16 KB PNG) passed the pixel cap; scaled to cover 32×32 it was
  // 32×2^29 pixels: 3.4 GB, then SIGABRT. Bound: the output plus stbir's buffers, < 64 MB.
  for (const auto& [w, h] : {std::pair<int, int>{1, 1 << 24}, {1 << 24, 1}}) {
    ddpm::Image im;
    im.width = w, im.height = h, im.channels = 1;
    im.pixels.assign(static_cast<size_t>(w) * h, 77);
    ddpm::Image out;
    const Measured m = run_forked(
        [&] {
          out = ddpm::resize_center_crop(im, 32, 32);
          if (out.pixels != std::vector<uint8_t>(32 * 32, 77)) throw std::runtime_error("wrong pixels");
        },
        1024);
    std::printf("[ measured ] resize %dx%d -> 32x32: peak RSS %.0f MB above the parent\n", w, h, m.peak_rss_mb);
    EXPECT_EQ(m.exit_code, 1) << w << "x" << h << ": " << m.output;
    EXPECT_LT(m.peak_rss_mb, 64) << w << "x" << h;
  }
}

TEST(HostileImage, StripOfOneByTwoTo24PngIsBounded) {
  // Item 3, through a tool: `ddpm-schedule --strip` of the 1×2^24 PNG. Bound: the tool's own
  // peak without an image + 256 MB.
  const std::string dir = ddpm::test::make_temp_dir("ddpm-strip-tall");
  ddpm::Image im;
  im.width = 1, im.height = 1 << 24, im.channels = 1;
  im.pixels.assign(size_t{1} << 24, 200);
  const std::string png = dir + "/tall.png";
  ddpm::save_png(png, im);
  im.pixels = {};
  const Measured base = run_measured(tool_path("ddpm-schedule") + " --timesteps 10");
  ASSERT_EQ(base.exit_code, 0) << base.output;
  const Measured m = run_measured(tool_path("ddpm-schedule") + " --timesteps 10 --strip " + png +
                                  " --size 32 --frames 4 --out " + dir + "/strip.png");
  std::printf("[ measured ] ddpm-schedule --strip 1x2^24 --size 32: peak RSS %.0f MB (%.0f MB without --strip)\n",
              m.peak_rss_mb, base.peak_rss_mb);
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_LT(m.peak_rss_mb, base.peak_rss_mb + 256) << "baseline " << base.peak_rss_mb << " MB";
  if (m.exit_code == 0) {
    const ddpm::Image strip = ddpm::load_image(dir + "/strip.png");
    EXPECT_EQ(strip.height, 32 + 2 * 2);  // make_grid's 2-pixel border
  }
  // Without --size the strip would be 4 × 2^24 pixels of floats: refused, naming the way out.
  const Measured big = run_measured(tool_path("ddpm-schedule") + " --timesteps 10 --strip " + png + " --frames 4 --out " +
                                    dir + "/big.png");
  EXPECT_EQ(big.exit_code, 2) << big.output;
  EXPECT_NE(big.output.find("use --size"), std::string::npos) << big.output;
  EXPECT_LT(big.peak_rss_mb, base.peak_rss_mb + 256);
  fs::remove_all(dir);
}

// ================================================================ gzip and deflate (item 6)

TEST(HostileIdx, GzipBombsStayWithinTheirBound) {
  // Item 6: a 1 MB .gz of 1 GiB of zeros took 2.26 GB before the size check. Bound: 256 MB.
  const std::string dir = ddpm::test::make_temp_dir("ddpm-idx-bomb");
  const std::string zeros = dir + "/zeros.idx.gz";
  write_bytes(zeros, compress_zeros({}, uint64_t{1} << 30, 31));
  // A valid header declaring 64 MiB of images, followed by 1 GiB: the gzip trailer (1 GiB)
  // disagrees with the header, which is refused before inflating the images.
  const std::string lying = dir + "/lying.idx.gz";
  write_bytes(lying, compress_zeros({0, 0, 8, 3, 0, 0, 0, 64, 0, 0, 4, 0, 0, 0, 4, 0}, uint64_t{1} << 30, 31));
  for (const std::string& path : {zeros, lying}) {
    const Measured m = run_forked([&] { ddpm::read_idx_images(path); }, 1024);
    std::printf("[ measured ] %s (%ju bytes): peak RSS %.0f MB above the parent\n", fs::path(path).filename().c_str(),
                static_cast<uintmax_t>(fs::file_size(path)), m.peak_rss_mb);
    EXPECT_EQ(m.exit_code, 0) << path << ": 0 = refused with an error; 1 = accepted, 2 = out of memory";
    expect_one_line_naming(m.output, path);
    EXPECT_LT(m.peak_rss_mb, 256) << path;
  }
  // A gzipped IDX file still reads exactly; cut short, it is an error.
  std::vector<uint8_t> idx = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
  for (int i = 0; i < 24; ++i) idx.push_back(static_cast<uint8_t>(i * 7));
  const std::vector<uint8_t> gz = compress_zeros(idx, 0, 31);
  write_bytes(dir + "/ok.idx.gz", gz);
  const at::Tensor images = ddpm::read_idx_images(dir + "/ok.idx.gz");
  ASSERT_EQ(images.sizes(), (at::IntArrayRef{2, 1, 3, 4}));
  EXPECT_EQ(std::memcmp(images.contiguous().data_ptr<uint8_t>(), idx.data() + 16, 24), 0);
  write_bytes(dir + "/cut.idx.gz", std::vector<uint8_t>(gz.begin(), gz.end() - 12));
  expect_one_line_naming(error_of([&] { ddpm::read_idx_images(dir + "/cut.idx.gz"); }), dir + "/cut.idx.gz");
  fs::remove_all(dir);
}

TEST(HostileNpz, DeflatedSigmaCostsItsSizeOnce) {
  // Item 6: a 2 MB .npz with a deflated 16383² sigma took > 4 GB (its 2 GB inflated, then
  // copied into a tensor). Here D = 4096 (a 128 MiB sigma, ~130 KB deflated): the bound is
  // the legitimate size once + 64 MB.
  const std::string dir = ddpm::test::make_temp_dir("ddpm-npz-bomb");
  const int64_t D = 4096;
  const double legit_mb = D * D * 8 / 1048576.0;
  const std::string path = dir + "/stats.npz";
  write_deflated_zip(path, {{"mu.npy", npy_f8_header("(4096,)"), uint64_t(D) * 8},
                            {"sigma.npy", npy_f8_header("(4096, 4096)"), uint64_t(D * D) * 8}});
  int64_t read_dim = 0;
  const Measured m = run_forked(
      [&] {
        const ddpm::eval::FeatureStats s = ddpm::eval::read_stats_npz(path);
        read_dim = s.sigma.size(0);
        // Checked in place: a tensor op here would add its own 128 MB to the peak.
        const double* p = s.sigma.contiguous().data_ptr<double>();
        if (read_dim != D || !std::all_of(p, p + D * D, [](double x) { return x == 0; }))
          throw std::runtime_error("wrong sigma");
      },
      2048);
  std::printf("[ measured ] npz with a deflated 4096^2 sigma (%ju bytes): peak RSS %.0f MB above the parent "
              "(sigma: %.0f MB)\n", static_cast<uintmax_t>(fs::file_size(path)), m.peak_rss_mb, legit_mb);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_LT(m.peak_rss_mb, legit_mb + 64);
  // A member that inflates to more than it declares stops at the declared size.
  const std::string lying = dir + "/lying.npz";
  write_deflated_zip(lying, {{"mu.npy", npy_f8_header("(4,)"), 32},
                             {"sigma.npy", npy_f8_header("(4, 4)"), uint64_t(1) << 27, 64 + 128}});
  const Measured l = run_forked([&] { ddpm::eval::read_stats_npz(lying); }, 1024);
  EXPECT_EQ(l.exit_code, 0) << l.output;
  expect_one_line_naming(l.output, lying);
  EXPECT_NE(l.output.find("more than the declared size"), std::string::npos) << l.output;
  EXPECT_LT(l.peak_rss_mb, 64);
  fs::remove_all(dir);
}

}  // namespace
