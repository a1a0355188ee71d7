// TensorBoard events files: CRC-32C against published vectors, and the files of the writer,
// ddpm-train and ddpm-eval --log-to read back by TensorBoard's own reader (EventAccumulator and
// its TFRecord reader, in the pip venv of scripts/setup-tensorboard.sh; run through
// tests/tensorboard_read.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ddpm/data/image.hpp"
#include "io/crc32.hpp"
#include "ddpm/io/event_file.hpp"
#include "io/json.hpp"
#include "ddpm/pipeline/checkpoint.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using ddpm::test::run_command;
namespace json = ddpm::json;

namespace {

struct Reader {
  std::string python;  ///< the venv's python, "" when it has no tensorboard
  std::string why;     ///< then why not
};

// The python that has tensorboard: DDPM_TENSORBOARD_PYTHON, else the venv's of setup-tensorboard.sh.
Reader find_reader() {
  std::string python;
  if (const char* p = std::getenv("DDPM_TENSORBOARD_PYTHON"); p && *p) {
    python = p;
  } else {
    std::string venv;
    if (const char* v = std::getenv("DDPM_TORCH2_VENV"); v && *v) {
      venv = v;
    } else {
      std::string version = ddpm::test::read_string(ddpm::test::source_dir() + "/scripts/torch2-version");
      version.erase(std::remove_if(version.begin(), version.end(), [](char c) { return c == ' ' || c == '\n'; }),
                    version.end());
      const char* home = std::getenv("HOME");
      venv = std::string(home ? home : "") + "/.cache/libddpm/torch-" + version;
    }
    python = venv + "/bin/python";
  }
  if (!fs::exists(python))
    return {"", "no Python venv at " + python +
                    " (bash scripts/setup-tensorboard.sh makes it; or set DDPM_TENSORBOARD_PYTHON)"};
  auto r = run_command(python + " -c 'import tensorboard.backend.event_processing.event_accumulator'");
  if (r.exit_code != 0)
    return {"", python + " has no tensorboard package (bash scripts/setup-tensorboard.sh installs it): " + r.output};
  return {python, ""};
}

const Reader& reader() {
  static const Reader r = find_reader();
  return r;
}
std::string reader_python() { return reader().python; }

// Skips the test, saying why, where TensorBoard's reader is not installed.
#define REQUIRE_TENSORBOARD() \
  if (reader().python.empty()) GTEST_SKIP() << reader().why

// The script's JSON: its last line (stderr, merged by run_command, comes before it).
json::Value script_json(const std::string& args) {
  auto r = run_command(reader_python() + " " + ddpm::test::source_dir() + "/tests/tensorboard_read.py " + args);
  if (r.exit_code != 0) throw std::runtime_error("tensorboard_read.py " + args + " failed: " + r.output);
  std::string out = r.output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return json::parse(out.substr(out.rfind('\n') + 1));
}

// What TensorBoard's EventAccumulator loads from a run directory (see tensorboard_read.py).
json::Value read_run(const std::string& logdir, const std::string& outdir) {
  fs::create_directories(outdir);
  return script_json("run " + logdir + " " + outdir);
}

// TensorBoard's TFRecord reader over one file: records read, and the error that stopped it ("" if none).
std::pair<int64_t, std::string> read_records(const std::string& file) {
  json::Value v = script_json("records " + file);
  const json::Value* error = v.find("error");
  return {v.find("records")->as_int64(), error->is_null() ? std::string() : error->as_string()};
}

// [[step, value], ...] of a scalar tag (empty if absent).
std::vector<std::pair<int64_t, double>> scalars(const json::Value& run, const std::string& tag) {
  std::vector<std::pair<int64_t, double>> out;
  if (const json::Value* t = run.find("scalars")->find(tag))
    for (const json::Value& e : t->items()) out.emplace_back(e.items()[0].as_int64(), e.items()[1].as_double());
  return out;
}

std::vector<int64_t> steps_of(const std::vector<std::pair<int64_t, double>>& series) {
  std::vector<int64_t> s;
  for (const auto& p : series) s.push_back(p.first);
  return s;
}

std::vector<std::string> events_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// Offsets of each record's start, walking the file by its length fields.
std::vector<size_t> record_offsets(const std::vector<uint8_t>& bytes) {
  std::vector<size_t> offsets;
  for (size_t at = 0; at + 12 <= bytes.size();) {
    uint64_t len = 0;
    for (int i = 0; i < 8; ++i) len |= uint64_t{bytes[at + i]} << (8 * i);
    offsets.push_back(at);
    at += 16 + len;
  }
  return offsets;
}

ddpm::Image test_image(int width, int height, int channels) {
  ddpm::Image im;
  im.width = width;
  im.height = height;
  im.channels = channels;
  for (int i = 0; i < width * height * channels; ++i) im.pixels.push_back(static_cast<uint8_t>(i * 37 + 11));
  return im;
}

// Scalars "a" = 0.5·step and "b" = −step at steps 1..n, one record each, after the file_version record.
std::string write_scalar_file(const std::string& dir, int n) {
  ddpm::io::EventFileWriter w(dir);
  for (int step = 1; step <= n; ++step) w.scalars(step, {{"a", 0.5 * step}, {"b", -1.0 * step}});
  return w.path();
}

}  // namespace

TEST(Crc32c, KnownVectors) {
  const std::string check = "123456789";
  EXPECT_EQ(ddpm::crc32c_update(0, check.data(), check.size()), 0xE3069283u);
  // RFC 3720 (iSCSI) appendix B.4.
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF), ascending(32), descending(32);
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<uint8_t>(i);
    descending[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(ddpm::crc32c_update(0, zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(ddpm::crc32c_update(0, ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(ddpm::crc32c_update(0, ascending.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(ddpm::crc32c_update(0, descending.data(), 32), 0x113FDB5Cu);
  // Continued in pieces (across the 8-byte fast path) = at once; CRC-32 (zip) is another function.
  const uint32_t part = ddpm::crc32c_update(0, check.data(), 5);
  EXPECT_EQ(ddpm::crc32c_update(part, check.data() + 5, 4), 0xE3069283u);
  EXPECT_EQ(ddpm::crc32_update(0, check.data(), check.size()), 0xCBF43926u);
  // TFRecord's mask: rotate right by 15, add 0xa282ead8.
  const uint32_t c = 0xE3069283u;
  EXPECT_EQ(ddpm::io::masked_crc32c(check.data(), check.size()), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(EventFile, RecordFraming) {
  const std::string r = ddpm::io::tfrecord("abc");
  ASSERT_EQ(r.size(), 3u + 16u);
  EXPECT_EQ(r.substr(0, 8), std::string("\x03\0\0\0\0\0\0\0", 8));  // uint64 LE length
  EXPECT_EQ(r.substr(12, 3), "abc");
  auto u32 = [&](size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(r[at + i])} << (8 * i);
    return v;
  };
  EXPECT_EQ(u32(8), ddpm::io::masked_crc32c(r.data(), 8));
  EXPECT_EQ(u32(15), ddpm::io::masked_crc32c("abc", 3));
}

TEST(EventFile, NewFilesSortAfterOlderOnes) {
  const std::string dir = ddpm::test::make_temp_dir("ddpm-tb-names");
  std::vector<std::string> paths;
  for (int i = 0; i < 3; ++i) paths.push_back(ddpm::io::EventFileWriter(dir).path());
  EXPECT_TRUE(std::is_sorted(paths.begin(), paths.end()));
  EXPECT_EQ(events_files(dir), paths);  // three distinct files, in the order they were made
  fs::remove_all(dir);
}

TEST(EventFile, TensorBoardReadsScalarsImagesAndText) {
  REQUIRE_TENSORBOARD();
  const std::string dir = ddpm::test::make_temp_dir("ddpm-tb-writer");
  const ddpm::Image rgb = test_image(5, 3, 3), gray = test_image(4, 6, 1);
  {
    ddpm::io::EventFileWriter w(dir + "/run");
    w.text(0, "notes", "some *markdown*\n\n    code = 1\n");
    for (int step = 1; step <= 3; ++step) w.scalars(step, {{"x/one", 0.1 * step}, {"x/two", 1e6 + step}});
    w.image(2, {"pic", ddpm::encode_png(rgb), rgb.height, rgb.width, rgb.channels});
    w.image(3, {"pic", ddpm::encode_png(gray), gray.height, gray.width, gray.channels});
  }
  const json::Value run = read_run(dir + "/run", dir + "/out");
  const auto one = scalars(run, "x/one"), two = scalars(run, "x/two");
  EXPECT_EQ(steps_of(one), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(steps_of(two), (std::vector<int64_t>{1, 2, 3}));
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(static_cast<float>(one[i].second), static_cast<float>(0.1 * (i + 1)));  // simple_value is a float
    EXPECT_EQ(two[i].second, 1e6 + (i + 1));
  }
  const json::Value* pics = run.find("images")->find("pic");
  ASSERT_NE(pics, nullptr);
  ASSERT_EQ(pics->items().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto& e = pics->items()[i].items();
    const ddpm::Image& want = i == 0 ? rgb : gray;
    EXPECT_EQ(e[0].as_int64(), static_cast<int64_t>(i + 2));
    EXPECT_EQ(e[1].as_int64(), want.width);
    EXPECT_EQ(e[2].as_int64(), want.height);
    const ddpm::Image got = ddpm::load_image(e[3].as_string());
    EXPECT_EQ(got.channels, want.channels);
    EXPECT_EQ(got.pixels, want.pixels);
  }
  const json::Value* notes = run.find("text")->find("notes");
  ASSERT_NE(notes, nullptr);
  ASSERT_EQ(notes->items().size(), 1u);
  EXPECT_EQ(notes->items()[0].items()[0].as_int64(), 0);
  EXPECT_EQ(notes->items()[0].items()[1].as_string(), "some *markdown*\n\n    code = 1\n");
  fs::remove_all(dir);
}

TEST(EventFile, ATruncatedFileLoadsUpToItsLastWholeRecord) {
  REQUIRE_TENSORBOARD();
  const std::string dir = ddpm::test::make_temp_dir("ddpm-tb-cut");
  const std::string file = write_scalar_file(dir + "/run", 5);
  const std::vector<uint8_t> bytes = ddpm::test::read_bytes(file);
  const std::vector<size_t> at = record_offsets(bytes);
  ASSERT_EQ(at.size(), 6u);  // file_version + 5 steps
  EXPECT_EQ(read_records(file), std::make_pair(int64_t{6}, std::string()));
  // Cut inside the record of step 4 (its header, its data, its last CRC byte): steps 1..3 load.
  for (size_t cut : {at[4] + 5, at[4] + 20, at[5] - 1}) {
    SCOPED_TRACE(cut);
    ddpm::test::write_bytes(file, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(cut)));
    const auto [records, error] = read_records(file);
    EXPECT_EQ(records, 4);
    EXPECT_NE(error.find("truncated record"), std::string::npos) << error;
    const json::Value run = read_run(dir + "/run", dir + "/out");
    EXPECT_EQ(steps_of(scalars(run, "a")), (std::vector<int64_t>{1, 2, 3}));
    EXPECT_EQ(steps_of(scalars(run, "b")), (std::vector<int64_t>{1, 2, 3}));
  }
  fs::remove_all(dir);
}

TEST(EventFile, AFlippedByteIsCaughtByTheCrc) {
  REQUIRE_TENSORBOARD();
  const std::string dir = ddpm::test::make_temp_dir("ddpm-tb-flip");
  const std::string file = write_scalar_file(dir + "/run", 5);
  const std::vector<uint8_t> bytes = ddpm::test::read_bytes(file);
  const std::vector<size_t> at = record_offsets(bytes);
  ASSERT_EQ(at.size(), 6u);
  // The last data byte of step 3's record is the top byte of b's float (−3 → −2.99.. or −NaN):
  // without the CRC the reader would show a wrong value. It stops there instead (DataLossError,
  // which EventAccumulator swallows), keeping steps 1 and 2.
  struct Case {
    size_t offset;
    const char* error;
  };
  for (const Case& c : {Case{at[4] - 5, "failed event crc32 check"}, Case{at[3] + 2, "failed header crc32 check"}}) {
    SCOPED_TRACE(c.offset);
    std::vector<uint8_t> bad = bytes;
    bad[c.offset] ^= 0x01;
    ddpm::test::write_bytes(file, bad);
    const auto [records, error] = read_records(file);
    EXPECT_EQ(records, 3);  // file_version, steps 1 and 2
    EXPECT_NE(error.find(c.error), std::string::npos) << error;
    const json::Value run = read_run(dir + "/run", dir + "/out");
    const auto b = scalars(run, "b");
    EXPECT_EQ(steps_of(b), (std::vector<int64_t>{1, 2}));
    for (const auto& [step, value] : b) EXPECT_EQ(value, -1.0 * step);
  }
  fs::remove_all(dir);
}

namespace {

std::string tiny_toml() { return ddpm::test::source_dir() + "/configs/tiny.toml"; }
std::string train_cmd(const std::string& data, const std::string& run) {
  return ddpm::test::bin_dir() + "ddpm-train --config " + tiny_toml() + " --data idx:" + data + " --run-dir " + run +
         " --threads 1 --device cpu --log-every 1 --save-every 2 --sample-every 2 --sample-n 4 --sample-steps 2";
}

std::vector<json::Value> jsonl(const std::string& path) {
  std::vector<json::Value> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

}  // namespace

// ddpm-train's events: every metrics.jsonl number under its tag at its step, the grids at theirs,
// the config; a run resumed from an older checkpoint shows the curves of an uninterrupted one.
TEST(TrainTensorBoard, CurvesGridsConfigAndAResumeThatLinesUp) {
  REQUIRE_TENSORBOARD();
  const std::string dir = ddpm::test::make_temp_dir("ddpm-tb-train");
  ddpm::test::write_idx_pair(dir + "/data.idx", "", 32, 1);
  const std::string data = dir + "/data.idx", whole = dir + "/whole", resumed = dir + "/resumed";

  auto a = run_command(train_cmd(data, whole) + " --steps 6");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  // Stopped at step 4, then resumed from the checkpoint of step 2 (as after a kill between saves).
  auto b = run_command(train_cmd(data, resumed) + " --steps 4");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  fs::remove(ddpm::checkpoint_path(resumed, 4));
  auto b2 = run_command(ddpm::test::bin_dir() + "ddpm-train --run-dir " + resumed + " --resume --steps 6 --threads 1");
  ASSERT_EQ(b2.exit_code, 0) << b2.output;
  ASSERT_EQ(events_files(resumed).size(), 2u);  // a new file for the resumed run, read after the first

  const json::Value w = read_run(whole, dir + "/out-whole");
  const json::Value r = read_run(resumed, dir + "/out-resumed");
  const std::vector<int64_t> all_steps = {1, 2, 3, 4, 5, 6};
  const std::vector<json::Value> metrics = jsonl(whole + "/metrics.jsonl");
  ASSERT_EQ(metrics.size(), 6u);
  for (const char* key : {"loss", "lr", "grad_norm", "images_per_s", "step_time"}) {
    SCOPED_TRACE(key);
    const auto series = scalars(w, std::string("train/") + key);
    ASSERT_EQ(steps_of(series), all_steps);
    for (size_t i = 0; i < series.size(); ++i) {
      const double logged = metrics[i].find(key)->as_double();
      if (std::string(key) == "images_per_s")  // written with 2 decimals to metrics.jsonl
        EXPECT_NEAR(series[i].second, logged, 0.006 + 1e-6 * logged);
      else if (std::string(key) == "step_time")  // 6 decimals
        EXPECT_NEAR(series[i].second, logged, 1e-6 + 1e-6 * logged);
      else
        EXPECT_EQ(static_cast<float>(series[i].second), static_cast<float>(logged));
    }
  }
  // images/s · s/step = images per step (batch-size 8).
  const auto ips = scalars(w, "train/images_per_s"), spt = scalars(w, "train/step_time");
  for (size_t i = 0; i < ips.size(); ++i) EXPECT_NEAR(ips[i].second * spt[i].second, 8.0, 1e-4) << i;
  EXPECT_TRUE(scalars(w, "train/allreduce_hidden").empty());  // one process: no all-reduce

  // The resumed run: the same steps once each (what its first file logged after step 2 is
  // dropped), the same losses, lr and gradient norms (the run is deterministic).
  for (const char* tag : {"train/loss", "train/lr", "train/grad_norm"}) {
    SCOPED_TRACE(tag);
    EXPECT_EQ(scalars(r, tag), scalars(w, tag));
  }
  EXPECT_EQ(steps_of(scalars(r, "train/step_time")), all_steps);

  // Grids at steps 2, 4, 6, decodable, the PNGs of samples/.
  for (const auto* run : {&w, &r}) {
    const json::Value* grids = run->find("images")->find("samples");
    ASSERT_NE(grids, nullptr);
    std::vector<int64_t> steps;
    for (const json::Value& e : grids->items()) {
      const int64_t step = e.items()[0].as_int64();
      steps.push_back(step);
      const ddpm::Image got = ddpm::load_image(e.items()[3].as_string());
      char name[32];
      std::snprintf(name, sizeof(name), "/samples/step-%08lld.png", static_cast<long long>(step));
      const ddpm::Image want = ddpm::load_image((run == &w ? whole : resumed) + name);
      EXPECT_EQ(got.width, want.width);
      EXPECT_EQ(e.items()[1].as_int64(), want.width);
      EXPECT_EQ(e.items()[2].as_int64(), want.height);
      EXPECT_EQ(got.pixels, want.pixels) << step;
    }
    EXPECT_EQ(steps, (std::vector<int64_t>{2, 4, 6}));
  }

  // The config, as a code block of config.toml: at step 0, and at step 2 for the resumed part.
  auto config_texts = [](const json::Value& run) {
    std::vector<std::pair<int64_t, std::string>> out;
    if (const json::Value* t = run.find("text")->find("config"))
      for (const json::Value& e : t->items()) out.emplace_back(e.items()[0].as_int64(), e.items()[1].as_string());
    return out;
  };
  const auto wc = config_texts(w), rc = config_texts(r);
  ASSERT_EQ(wc.size(), 1u);
  EXPECT_EQ(wc[0].first, 0);
  std::string indented;
  std::istringstream toml(ddpm::test::read_string(whole + "/config.toml"));
  for (std::string line; std::getline(toml, line);) indented += "    " + line + "\n";
  EXPECT_EQ(wc[0].second, indented);
  EXPECT_NE(wc[0].second.find("    steps = 6\n"), std::string::npos) << wc[0].second;
  ASSERT_EQ(rc.size(), 2u);
  EXPECT_EQ(rc[0].first, 0);
  EXPECT_NE(rc[0].second.find("    steps = 4\n"), std::string::npos);
  EXPECT_EQ(rc[1].first, 2);
  EXPECT_NE(rc[1].second.find("    steps = 6\n"), std::string::npos);

  // --no-tensorboard: no events file, and the choice is kept in config.toml.
  auto off = run_command(train_cmd(data, dir + "/off") + " --steps 1 --no-tensorboard");
  ASSERT_EQ(off.exit_code, 0) << off.output;
  EXPECT_TRUE(events_files(dir + "/off").empty());
  EXPECT_NE(ddpm::test::read_string(dir + "/off/config.toml").find("tensorboard = false"), std::string::npos);
  fs::remove_all(dir);
}

// Evaluations: the trainer's (eval-every) under eval/*, and ddpm-eval --log-to RUN at the
// checkpoint's step in RUN/eval.
TEST(TrainTensorBoard, EvaluationsOfTheTrainerAndOfDdpmEval) {
  REQUIRE_TENSORBOARD();
  const std::string dir = ddpm::test::make_temp_dir("ddpm-tb-eval");
  ddpm::test::write_idx_pair(dir + "/train.idx", dir + "/train-labels.idx", 120, 1);
  ddpm::test::write_idx_pair(dir + "/test.idx", dir + "/test-labels.idx", 40, 2);
  const std::string eval = ddpm::test::bin_dir() + "ddpm-eval ";
  auto fit = run_command(eval + "fit-classifier --data idx:" + dir + "/train.idx --labels idx:" + dir +
                         "/train-labels.idx --epochs 1 --batch-size 32 --hidden 16 --out " + dir +
                         "/clf.pt --threads 1 --device cpu");
  ASSERT_EQ(fit.exit_code, 0) << fit.output;
  const std::string run = dir + "/run";
  auto t = run_command(ddpm::test::bin_dir() + "ddpm-train --config " + tiny_toml() + " --data idx:" + dir +
                       "/train.idx --run-dir " + run + " --steps 2 --timesteps 40 --threads 1 --device cpu "
                       "--sampler ddim --sample-steps 3 --eval-every 2 --eval-n 12 --eval-features " + dir +
                       "/clf.pt --eval-ref idx:" + dir + "/test.idx");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  const json::Value tr = read_run(run, dir + "/out");
  json::Value line;
  for (const json::Value& l : jsonl(run + "/metrics.jsonl"))
    if (l.find("fid")) line = l;
  ASSERT_TRUE(line.is_object());
  for (const char* key : {"fid", "kid", "precision", "recall"}) {
    SCOPED_TRACE(key);
    const auto series = scalars(tr, std::string("eval/") + key);
    ASSERT_EQ(series.size(), 1u);
    EXPECT_EQ(series[0].first, 2);
    EXPECT_EQ(static_cast<float>(series[0].second), static_cast<float>(line.find(key)->as_double()));
  }

  const std::string compare = eval + "compare --real idx:" + dir + "/test.idx --n 10 --sample-batch 5 --sampler "
                              "ddim --steps 3 --features " + dir + "/clf.pt --kid-subset-size 10 --threads 1 "
                              "--device cpu";
  auto e = run_command(compare + " --checkpoint " + run + " --json " + dir + "/eval.json --log-to " + run);
  ASSERT_EQ(e.exit_code, 0) << e.output;
  const json::Value result = json::parse(ddpm::test::read_string(dir + "/eval.json"));
  const json::Value er = read_run(run + "/eval", dir + "/out-eval");
  for (const char* key : {"fid", "kid", "precision", "recall"}) {
    SCOPED_TRACE(key);
    const auto series = scalars(er, std::string("eval/") + key);
    ASSERT_EQ(series.size(), 1u);
    EXPECT_EQ(series[0].first, 2);
    const double printed = result.find(key)->as_double();  // --json prints 6 significant digits
    EXPECT_NEAR(series[0].second, printed, 1e-5 * std::abs(printed) + 1e-12);
  }
  // The training's own log is untouched by it.
  EXPECT_EQ(scalars(read_run(run, dir + "/out2"), "eval/fid"), scalars(tr, "eval/fid"));

  // --log-to needs a checkpoint (its step) and an existing run directory: one line, exit 2.
  auto no_ckpt = run_command(compare + " --fake idx:" + dir + "/train.idx --log-to " + run);
  EXPECT_EQ(no_ckpt.exit_code, 2) << no_ckpt.output;
  EXPECT_NE(no_ckpt.output.find("--log-to"), std::string::npos) << no_ckpt.output;
  auto no_dir = run_command(compare + " --checkpoint " + run + " --log-to " + dir + "/missing");
  EXPECT_EQ(no_dir.exit_code, 2) << no_dir.output;
  EXPECT_NE(no_dir.output.find("missing"), std::string::npos) << no_dir.output;
  fs::remove_all(dir);
}
