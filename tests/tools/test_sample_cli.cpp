// ddpm-sample end to end: a tiny model is trained for a few steps by ddpm-train in the
// test, then sampled with every sampler; PNG sizes and channels, reseeding, bad checkpoints.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "ddpm/data/image.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using ddpm::test::bin_dir;
using ddpm::test::read_bytes;
using ddpm::test::run_command;

namespace {


// Trains the tiny config for 4 steps on 16 generated 8×8 images with `channels` channels.
std::string train_tiny(int channels, const std::string& extra = "") {
  const std::string dir = ddpm::test::make_temp_dir("ddpm-sample-data");
  for (int k = 0; k < 16; ++k) {
    ddpm::Image im;
    im.width = im.height = 8;
    im.channels = channels;
    for (int i = 0; i < 8 * 8 * channels; ++i) im.pixels.push_back(static_cast<uint8_t>((i * 7 + k * 31) % 256));
    ddpm::save_png(dir + "/img" + std::to_string(k) + ".png", im);
  }
  const std::string run = ddpm::test::make_temp_dir("ddpm-sample-run");
  auto r = run_command(bin_dir() + "ddpm-train --config " + ddpm::test::source_dir() +
                       "/configs/tiny.toml --data " + dir + " --run-dir " + run +
                       " --steps 4 --batch-size 8 --image-size 8 --timesteps 40 --sample-every 0 --threads 1"
                       " --device cpu --log-level warn " + extra);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return run;
}

class SampleCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gray_run_ = new std::string(train_tiny(1, "--sampler ddim --sample-steps 5 --clip-x0 --sample-seed 3"));
    rgb_run_ = new std::string(train_tiny(3));
  }
  static void TearDownTestSuite() {
    delete gray_run_;
    delete rgb_run_;
  }
  static std::string sample(const std::string& run, const std::string& args, const std::string& out) {
    auto r = run_command(bin_dir() + "ddpm-sample --checkpoint " + run + " --device cpu --threads 1 --out " + out +
                         " " + args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  }
  static std::string* gray_run_;
  static std::string* rgb_run_;
};
std::string* SampleCli::gray_run_ = nullptr;
std::string* SampleCli::rgb_run_ = nullptr;

TEST_F(SampleCli, EverySamplerWritesAGridOfTheRightSizeAndChannels) {
  const std::string out = ddpm::test::make_temp_dir("ddpm-sample-out");
  const struct {
    std::string args;
  } cases[] = {{"--sampler ddpm"},
               {"--sampler ddpm --steps 10 --variance fixed_large"},
               {"--sampler ddim --steps 10 --eta 0"},
               {"--sampler ddim --steps 10 --eta 1 --spacing trailing"},
               {"--sampler dpm++2m --steps 8"},
               {"--sampler ddim --steps 5 --corrector"}};
  int i = 0;
  for (const auto& c : cases) {
    for (int channels : {1, 3}) {
      const std::string png = out + "/grid" + std::to_string(i++) + ".png";
      sample(channels == 1 ? *gray_run_ : *rgb_run_, c.args + " --n 6 --nrow 4 --padding 2", png);
      ddpm::Image im = ddpm::load_image(png);
      // torchvision layout: ncol = min(nrow, n), nrows = ceil(n / ncol); pad around every image.
      EXPECT_EQ(im.width, 4 * (8 + 2) + 2) << c.args;
      EXPECT_EQ(im.height, 2 * (8 + 2) + 2) << c.args;
      EXPECT_EQ(im.channels, channels) << c.args;
    }
  }
}

TEST_F(SampleCli, SameSeedGivesIdenticalBytesAndOtherSeedsDiffer) {
  const std::string out = ddpm::test::make_temp_dir("ddpm-sample-seed");
  sample(*rgb_run_, "--sampler ddim --steps 10 --eta 1 --n 4 --seed 7", out + "/a.png");
  sample(*rgb_run_, "--sampler ddim --steps 10 --eta 1 --n 4 --seed 7 --batch-size 1", out + "/b.png");
  sample(*rgb_run_, "--sampler ddim --steps 10 --eta 1 --n 4 --seed 8", out + "/c.png");
  EXPECT_EQ(read_bytes(out + "/a.png"), read_bytes(out + "/b.png"));
  EXPECT_NE(read_bytes(out + "/a.png"), read_bytes(out + "/c.png"));
}

TEST_F(SampleCli, SamplerDefaultsComeFromTheCheckpointAndFlagsOverrideThem) {
  const std::string out = ddpm::test::make_temp_dir("ddpm-sample-defaults");
  sample(*gray_run_, "--n 4", out + "/default.png");
  sample(*gray_run_, "--n 4 --sampler ddim --steps 5 --clip-x0 --seed 3", out + "/explicit.png");
  sample(*gray_run_, "--n 4 --seed 4", out + "/seed4.png");
  EXPECT_EQ(read_bytes(out + "/default.png"), read_bytes(out + "/explicit.png"));
  EXPECT_NE(read_bytes(out + "/default.png"), read_bytes(out + "/seed4.png"));
}

TEST_F(SampleCli, IndividualImagesAndTrajectory) {
  const std::string out = ddpm::test::make_temp_dir("ddpm-sample-traj");
  sample(*gray_run_,
         "--sampler ddim --steps 10 --n 3 --individual " + out + "/each --trajectory " + out +
             "/traj.png --trajectory-frames 5 --padding 1",
         out + "/grid.png");
  for (int k = 0; k < 3; ++k) {
    char name[16];
    std::snprintf(name, sizeof(name), "%05d.png", k);
    ddpm::Image im = ddpm::load_image(out + "/each/" + name);
    EXPECT_EQ(im.width, 8);
    EXPECT_EQ(im.height, 8);
    EXPECT_EQ(im.channels, 1);
  }
  EXPECT_FALSE(fs::exists(out + "/each/00003.png"));
  ddpm::Image traj = ddpm::load_image(out + "/traj.png");
  EXPECT_EQ(traj.width, 5 * (8 + 1) + 1);   // 5 frames per row
  EXPECT_EQ(traj.height, 3 * (8 + 1) + 1);  // one row per image
  EXPECT_EQ(traj.channels, 1);
}

TEST_F(SampleCli, BadCheckpointsGiveOneLineErrorsAndExitCode2) {
  const std::string dir = ddpm::test::make_temp_dir("ddpm-sample-bad");
  const std::string good = *gray_run_ + "/checkpoints";
  std::string file;
  for (auto& e : fs::directory_iterator(good))
    if (e.path().extension() == ".pt") file = e.path().string();
  ASSERT_FALSE(file.empty());
  {  // truncated
    auto bytes = read_bytes(file);
    bytes.resize(bytes.size() / 2);
    ddpm::test::write_bytes(dir + "/truncated.pt", bytes);
  }
  std::ofstream(dir + "/foreign.pt") << "not a checkpoint at all\n";
  fs::create_directories(dir + "/empty-run");
  for (const std::string bad : {dir + "/missing.pt", dir + "/truncated.pt", dir + "/foreign.pt", dir + "/empty-run"}) {
    auto r = run_command(bin_dir() + "ddpm-sample --device cpu --checkpoint " + bad + " --out " + dir + "/x.png");
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.output;
    // One line, naming the file.
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find(fs::path(bad).filename().string()), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir + "/x.png"));
  }
}

// --nproc-per-node: the ranks draw slices of the images; the files are those of one process.
TEST_F(SampleCli, LocalRanksWriteTheBytesOfOneProcess) {
  const std::string out = ddpm::test::make_temp_dir("ddpm-sample-ranks");
  const std::string tmp = ddpm::test::make_temp_dir("ddpm-sample-ranks-tmp");
  const std::string args = "--sampler ddim --steps 10 --eta 1 --n 7 --nrow 4 --batch-size 3 --seed 5";
  sample(*rgb_run_, args + " --individual " + out + "/one", out + "/one.png");
  // 2 ranks (slices of 3 and 4 images, batched 3 + 1), and 9 > 7 images (7 ranks of one image).
  for (const std::string n : {"2", "9"}) {
    auto r = run_command("TMPDIR=" + tmp + " " + bin_dir() + "ddpm-sample --checkpoint " + *rgb_run_ +
                         " --device cpu --out " + out + "/n" + n + ".png --individual " + out + "/n" + n + " " + args +
                         " --nproc-per-node " + n);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(read_bytes(out + "/one.png"), read_bytes(out + "/n" + n + ".png")) << n;
    for (int k = 0; k < 7; ++k) {
      char name[16];
      std::snprintf(name, sizeof(name), "/%05d.png", k);
      EXPECT_EQ(read_bytes(out + "/one" + name), read_bytes(out + "/n" + n + name)) << n << name;
    }
    EXPECT_NE(r.output.find("on " + std::string(n == "2" ? "2" : "7") + " local ranks"), std::string::npos) << r.output;
    // The ranks are quiet: no progress bars, no second checkpoint line.
    EXPECT_EQ(r.output.find("sample "), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("checkpoint "), r.output.rfind("checkpoint ")) << r.output;
  }
  EXPECT_TRUE(fs::is_empty(tmp)) << "the slice files are removed";
}

TEST_F(SampleCli, AFailedRankFailsTheCommandNamingTheRank) {
  // Rank 1 is killed (as by the OOM killer) while it samples: the command ends with its code
  // (128 + 9), names it, stops rank 0, writes no grid and leaves no slice files.
  const std::string out = ddpm::test::make_temp_dir("ddpm-sample-killed");
  const std::string tmp = ddpm::test::make_temp_dir("ddpm-sample-killed-tmp");
  const std::string cmd = "exec 2>&1; TMPDIR=" + tmp + " " + bin_dir() + "ddpm-sample --checkpoint " + *gray_run_ +
                          " --device cpu --out " + out + "/x.png --sampler ddpm --n 100000 --batch-size 8 "
                          "--nrow 1000 --nproc-per-node 2 & p=$!; "
                          "for i in $(seq 1 1200); do for c in $(pgrep -P $p); do "
                          "if tr '\\0' '\\n' < /proc/$c/environ 2>/dev/null | grep -qx 'DDPM_SLICE=1/2'; then "
                          "kill -9 $c; echo killed; break 2; fi; done; sleep 0.05; done; wait $p";
  auto r = run_command(cmd);
  ASSERT_NE(r.output.find("killed\n"), std::string::npos) << "rank 1 never seen: " << r.output;
  EXPECT_EQ(r.exit_code, 128 + 9) << r.output;
  EXPECT_NE(r.output.find("ddpm-sample: error: --nproc-per-node: rank 1 was killed by signal 9"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(out + "/x.png"));
  EXPECT_TRUE(fs::is_empty(tmp)) << "the slice files are removed";
}

TEST(SampleCliArgs, BadOptionsExit2) {
  for (const std::string n : {"0", "-1", "10000", "x"}) {
    auto r = run_command(bin_dir() + "ddpm-sample --checkpoint x --nproc-per-node " + n);
    EXPECT_EQ(r.exit_code, 2) << n << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find("--nproc-per-node"), std::string::npos) << r.output;
  }
  auto t = run_command(bin_dir() + "ddpm-sample --checkpoint x --nproc-per-node 2 --trajectory t.png");
  EXPECT_EQ(t.exit_code, 2) << t.output;
  EXPECT_NE(t.output.find("--trajectory: draws the first batch in one process"), std::string::npos) << t.output;
  auto r = run_command(bin_dir() + "ddpm-sample --checkpoint x --sampler euler");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_command(bin_dir() + "ddpm-sample --checkpoint x --n 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

// ------------------------------------------------------------ guidance and editing

ddpm::Image gray(int size, uint8_t value) {
  ddpm::Image im;
  im.width = im.height = size;
  im.channels = 1;
  im.pixels.assign(static_cast<size_t>(size * size), value);
  return im;
}

// A class-conditional tiny model (class folders "left" and "right"), 4 steps.
class GuidedSampleCli : public SampleCli {
 protected:
  static void SetUpTestSuite() {
    SampleCli::SetUpTestSuite();
    const std::string dir = ddpm::test::make_temp_dir("ddpm-sample-classes");
    for (const std::string cls : {"left", "right"}) {
      fs::create_directories(dir + "/" + cls);
      for (int k = 0; k < 8; ++k) {
        ddpm::Image im = gray(8, 30);
        for (int y = 0; y < 8; ++y)
          for (int x = cls == "left" ? 0 : 4; x < (cls == "left" ? 4 : 8); ++x) im.pixels[y * 8 + x] = 220;
        ddpm::save_png(dir + "/" + cls + "/" + std::to_string(k) + ".png", im);
      }
    }
    cond_run_ = new std::string(ddpm::test::make_temp_dir("ddpm-sample-cond-run"));
    auto r = run_command(bin_dir() + "ddpm-train --config " + ddpm::test::source_dir() + "/configs/tiny.toml --data " +
                         dir + " --class-folders --run-dir " + *cond_run_ +
                         " --steps 4 --batch-size 8 --timesteps 40 --sample-every 0 --threads 1 --device cpu"
                         " --log-level warn");
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete cond_run_;
    SampleCli::TearDownTestSuite();
  }
  static ddpm::test::CommandResult fails(const std::string& run, const std::string& args) {
    auto r = run_command(bin_dir() + "ddpm-sample --checkpoint " + run + " --device cpu --threads 1 --out " +
                         ddpm::test::make_temp_dir("ddpm-sample-fail") + "/x.png " + args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << ": " << r.output;
    return r;
  }
  static std::string* cond_run_;
};
std::string* GuidedSampleCli::cond_run_ = nullptr;

TEST_F(GuidedSampleCli, ClassAllWritesOneRowPerClassAndNamesComeFromTheFolders) {
  const std::string out = ddpm::test::make_temp_dir("ddpm-sample-cond");
  sample(*cond_run_, "--class all --nrow 3 --padding 2", out + "/all.png");
  const ddpm::Image all = ddpm::load_image(out + "/all.png");
  EXPECT_EQ(all.width, 3 * (8 + 2) + 2);
  EXPECT_EQ(all.height, 2 * (8 + 2) + 2);  // classes left, right
  sample(*cond_run_, "--class right --guidance 2 --n 2", out + "/right.png");
  sample(*cond_run_, "--class 0 --n 2", out + "/zero.png");
  sample(*cond_run_, "--class left --n 2", out + "/left.png");
  EXPECT_EQ(read_bytes(out + "/zero.png"), read_bytes(out + "/left.png"));  // "left" is class 0 (sorted)
  // --class all and guidance on local ranks: every image keeps its class and noise.
  sample(*cond_run_, "--class all --nrow 3 --padding 2 --guidance 2 --nproc-per-node 2", out + "/all2.png");
  sample(*cond_run_, "--class all --nrow 3 --padding 2 --guidance 2", out + "/all1.png");
  EXPECT_EQ(read_bytes(out + "/all1.png"), read_bytes(out + "/all2.png"));
}

TEST_F(GuidedSampleCli, InpaintingKeepsTheKnownPixelsAndSdeditAtZeroIsTheInit) {
  const std::string out = ddpm::test::make_temp_dir("ddpm-sample-edit");
  ddpm::Image init = gray(8, 0);
  for (int i = 0; i < 64; ++i) init.pixels[i] = static_cast<uint8_t>(i * 4);
  ddpm::Image mask = gray(8, 0);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 4; ++x) mask.pixels[y * 8 + x] = 255;  // keep the left half
  ddpm::save_png(out + "/init.png", init);
  ddpm::save_png(out + "/mask.png", mask);
  for (const std::string run : {*gray_run_, *cond_run_}) {
    sample(run, "--init " + out + "/init.png --mask " + out + "/mask.png --n 2 --jump-length 2 --resample 3 --individual " +
                    out + "/each",
           out + "/inpainted.png");
    for (const char* name : {"00000.png", "00001.png"}) {
      const ddpm::Image im = ddpm::load_image(out + "/each/" + name);
      for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 4; ++x) EXPECT_EQ(im.pixels[y * 8 + x], init.pixels[y * 8 + x]) << name << " " << x << "," << y;
    }
  }
  sample(*gray_run_, "--init " + out + "/init.png --strength 0 --n 1", out + "/same.png");
  EXPECT_EQ(ddpm::load_image(out + "/same.png").pixels, init.pixels);
  sample(*gray_run_, "--init " + out + "/init.png --strength 0.5 --n 2", out + "/edited.png");
  ddpm::save_png(out + "/low.png", gray(4, 200));
  sample(*gray_run_, "--upscale " + out + "/low.png --n 2 --nrow 2 --padding 0", out + "/up.png");
  EXPECT_EQ(ddpm::load_image(out + "/up.png").width, 16);
}

TEST_F(GuidedSampleCli, BadGuidanceAndEditingInputsAreOneLineExit2) {
  const std::string dir = ddpm::test::make_temp_dir("ddpm-sample-badguide");
  ddpm::save_png(dir + "/init.png", gray(8, 100));
  ddpm::save_png(dir + "/small.png", gray(4, 255));
  auto mentions = [](const ddpm::test::CommandResult& r, const std::string& what) {
    EXPECT_NE(r.output.find(what), std::string::npos) << r.output;
  };
  mentions(fails(*cond_run_, "--class sneaker"), "sneaker");
  mentions(fails(*cond_run_, "--class 2"), "--class");
  mentions(fails(*gray_run_, "--class 0 --guidance 1"), "unconditional");
  mentions(fails(*gray_run_, "--guidance 1"), "unconditional");
  mentions(fails(*gray_run_, "--init " + dir + "/init.png --strength 1.5"), "--strength");
  mentions(fails(*gray_run_, "--init " + dir + "/init.png --strength -0.5"), "--strength");
  mentions(fails(*gray_run_, "--init " + dir + "/init.png --mask " + dir + "/small.png"), "--mask");
  mentions(fails(*gray_run_, "--init " + dir + "/small.png"), "--init");
  mentions(fails(*gray_run_, "--init " + dir + "/missing.png"), "missing.png");
  mentions(fails(*gray_run_, "--upscale " + dir + "/init.png --init " + dir + "/init.png"), "--upscale");
}

}  // namespace
