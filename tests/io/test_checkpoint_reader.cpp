// libddpm's own checkpoint reader (io/torch_archive.hpp): old files keep loading, hostile ones are
// one-line errors with bounded memory; tensor views are bounded by their storages (io/unpickler.hpp);
// networks built from untrusted configs are sized before they are built (ModelLimits).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adamw.h>
#include <torch/version.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "ddpm/eval/features.hpp"
#include "ddpm/interop/diffusers.hpp"
#include "interop/diffusers_json.hpp"
#include "io/json.hpp"
#include "ddpm/io/torch_file.hpp"
#include "ddpm/models/unet.hpp"
#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/pipeline/config.hpp"
#include "io/zip.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using ddpm::test::error_of;

namespace {

// torch::optim keys its per-parameter state by the TensorImpl: as a string in LibTorch 1.x, as the
// pointer itself in 2.x.
auto optimizer_state_key(const at::Tensor& p) {
#if TORCH_VERSION_MAJOR >= 2
  return static_cast<void*>(p.unsafeGetTensorImpl());
#else
  return c10::guts::to_string(p.unsafeGetTensorImpl());
#endif
}

// ---------------------------------------------------------------- a checkpoint with known contents

ddpm::Config tiny_config() {
  ddpm::Config c;
  ddpm::UNetConfig& m = c.model;
  m.image_height = m.image_width = 4;
  m.base_channels = 4;
  m.channel_mult = {1};
  m.num_res_blocks = 1;
  m.attention_resolutions = {};
  m.groups = 2;
  return c;
}

// Value i of parameter k (closed form, so the test needs no reader to know what was written).
float weight_value(int seed, size_t k, int64_t i) {
  return static_cast<float>(std::sin(seed + 0.37 * static_cast<double>(k) + 0.001 * static_cast<double>(i)));
}
at::Tensor formula(const at::Tensor& like, int seed, size_t k) {
  at::Tensor t = at::empty({like.numel()}, at::kFloat);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = weight_value(seed, k, i);
  return t.reshape(like.sizes());
}
void fill(torch::nn::Module& m, int seed) {
  at::NoGradGuard g;
  auto ps = m.parameters();
  for (size_t k = 0; k < ps.size(); ++k) ps[k].copy_(formula(ps[k], seed, k));
}
at::Tensor rng_bytes() { return at::arange(16, at::kByte); }

// What save_checkpoint wrote: model = formula(1), EMA = formula(2), and AdamW after one step with
// gradients formula(3): exp_avg = (1 − β1)·g, exp_avg_sq = (1 − β2)·g² (closed forms).
void write_known_checkpoint(const std::string& path) {
  const ddpm::Config config = tiny_config();
  ddpm::UNet model(config.model), ema(config.model);
  fill(*model, 1);
  fill(*ema, 2);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-3));
  auto ps = model->parameters();
  for (size_t k = 0; k < ps.size(); ++k) ps[k].mutable_grad() = formula(ps[k], 3, k);
  opt.step();
  fill(*model, 1);  // the step moved them; the file holds the formula
  ddpm::CheckpointContents c;
  c.config_toml = ddpm::config_to_toml(config);
  c.step = 42;
  c.model = model.get();
  c.ema = ema.get();
  c.ema_updates = 41;
  c.optimizer = &opt;
  c.rng["cpu"] = rng_bytes();
  c.data_state.epoch = 3;
  c.data_state.position = 17;
  ddpm::save_checkpoint(path, c);
}

void expect_known_checkpoint(const std::string& path) {
  ddpm::CheckpointReader reader(path);
  EXPECT_EQ(reader.step(), 42);
  EXPECT_EQ(reader.ema_updates(), 41);
  EXPECT_EQ(reader.data_state().epoch, 3);
  EXPECT_EQ(reader.data_state().position, 17);
  EXPECT_TRUE(reader.rng_state("cpu").equal(rng_bytes()));
  EXPECT_FALSE(reader.rng_state("cuda").defined());
  const ddpm::Config config = reader.config();
  EXPECT_EQ(config.model.base_channels, 4);
  ddpm::UNet model(config.model), ema(config.model);
  reader.load_model(*model);
  reader.load_ema(*ema);
  auto ps = model->parameters(), es = ema->parameters();
  for (size_t k = 0; k < ps.size(); ++k) {
    EXPECT_TRUE(ps[k].equal(formula(ps[k], 1, k))) << "parameter " << k;
    EXPECT_TRUE(es[k].equal(formula(es[k], 2, k))) << "EMA parameter " << k;
  }
  ASSERT_TRUE(reader.has_optimizer());
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-3));
  reader.load_optimizer(opt);
  auto& group = opt.param_groups().at(0);
  ASSERT_EQ(group.params().size(), ps.size());
  for (size_t k = 0; k < ps.size(); ++k) {
    auto it = opt.state().find(optimizer_state_key(group.params()[k]));
    ASSERT_NE(it, opt.state().end()) << "no optimizer state for parameter " << k;
    auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
    const at::Tensor g = formula(ps[k], 3, k);
    EXPECT_EQ(st.step(), 1);
    EXPECT_TRUE(at::allclose(st.exp_avg(), 0.1 * g, 1e-5, 1e-7)) << "exp_avg " << k;
    EXPECT_TRUE(at::allclose(st.exp_avg_sq(), 0.001 * g * g, 1e-4, 1e-9)) << "exp_avg_sq " << k;
  }
  const ddpm::LoadedModel loaded = ddpm::load_model_for_sampling(path);
  EXPECT_TRUE(loaded.ema);
  EXPECT_TRUE(loaded.model->parameters()[0].equal(formula(es[0], 2, 0)));
}

// ---------------------------------------------------------------- rewriting archives

using Members = std::vector<std::pair<std::string, std::vector<uint8_t>>>;

Members members_of(const std::string& path) {
  const std::string bytes = ddpm::test::read_string(path);
  const ddpm::io::ZipReader zip(bytes);
  Members out;
  for (const auto& e : zip.entries()) out.emplace_back(e.name, zip.read(e, 1 << 20));
  return out;
}

std::vector<uint8_t>& member(Members& ms, const std::string& suffix) {
  for (auto& [name, bytes] : ms)
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) return bytes;
  throw std::runtime_error("no member " + suffix);
}

void replace_all(std::vector<uint8_t>& bytes, const std::string& from, const std::string& to) {
  std::string s(bytes.begin(), bytes.end());
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  bytes.assign(s.begin(), s.end());
}

// A small checkpoint (a 64×32 linear layer) to spoil.
std::string small_checkpoint(const std::string& dir) {
  torch::nn::Linear layer(64, 32);
  ddpm::CheckpointContents c;
  c.config_toml = "lr = 0.01\n";
  c.step = 1;
  c.model = layer.get();
  const std::string path = dir + "/good.pt";
  ddpm::save_checkpoint(path, c);
  return path;
}

// The refusal of a hostile checkpoint: a CorruptCheckpointError, one line, naming the file.
std::string refusal(const std::string& path) {
  try {
    ddpm::CheckpointReader reader(path);
    torch::nn::Linear layer(64, 32);
    reader.load_model(*layer);
  } catch (const ddpm::CorruptCheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << path << ": not a CorruptCheckpointError: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << path << " was accepted";
  return "";
}

// Peak resident memory (MB) of `f` run in a child process, which must exit normally; the child
// reports whether f threw. Measures allocations a hostile file would cause.
struct ChildRun {
  bool threw = false;
  double peak_mb = 0;
};
ChildRun run_in_child(const std::function<void()>& f) {
  rusage before{};
  getrusage(RUSAGE_CHILDREN, &before);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 0;
    try {
      f();
    } catch (const std::exception&) {
      code = 3;
    }
    std::_Exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  rusage after{};
  getrusage(RUSAGE_CHILDREN, &after);
  EXPECT_TRUE(WIFEXITED(status)) << "the child died (signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << ")";
  return {WIFEXITED(status) && WEXITSTATUS(status) == 3, static_cast<double>(after.ru_maxrss) / 1024.0};
}

// Resident memory of this process now (MB): a forked child starts with it.
double rss_mb() {
  long pages = 0, resident = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// ---------------------------------------------------------------- hand-made pickles (item 4)

std::string le_bytes(uint64_t v, int n) {
  std::string s;
  for (int k = 0; k < n; ++k) s += static_cast<char>((v >> (8 * k)) & 0xFF);
  return s;
}
std::string p_int(int64_t v) { return "\x8a\x08" + le_bytes(static_cast<uint64_t>(v), 8); }  // LONG1
std::string p_str(const std::string& s) { return "X" + le_bytes(s.size(), 4) + s; }
std::string p_tuple(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (int64_t x : v) s += p_int(x);
  return s + "t";
}
// {"w": a float tensor of `size`/`stride`/`offset` over storage '0' of `numel` elements}.
std::string state_dict_pickle(int64_t numel, const std::vector<int64_t>& size, const std::vector<int64_t>& stride,
                              int64_t offset = 0) {
  return "\x80\x02}(" + p_str("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" + p_str("storage") + "ctorch\nFloatStorage\n" +
         p_str("0") + p_str("cpu") + p_int(numel) + "tQ" + p_int(offset) + p_tuple(size) + p_tuple(stride) +
         "\x89" + "ccollections\nOrderedDict\n)RtRu.";
}
std::string write_zip_pt(const std::string& path, const std::string& pickle, const std::vector<float>& data) {
  std::vector<uint8_t> raw(data.size() * 4);
  std::memcpy(raw.data(), data.data(), raw.size());
  ddpm::io::write_zip_stored(path, {{"archive/data.pkl", std::vector<uint8_t>(pickle.begin(), pickle.end())},
                                    {"archive/data/0", raw},
                                    {"archive/version", {'3', '\n'}}});
  return path;
}
// torch.save's legacy format: magic, protocol, sys info, the object, the storage keys, the storages.
std::string write_legacy_pt(const std::string& path, const std::string& object, const std::vector<float>& data) {
  std::string b = "\x80\x02\x8a\x0a" + std::string("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10) + ".";
  b += "\x80\x02M\xe9\x03.";
  b += "\x80\x02}.";
  b += object;
  b += "\x80\x02](" + p_str("0") + "e.";
  b += le_bytes(data.size(), 8);
  b += std::string(reinterpret_cast<const char*>(data.data()), data.size() * 4);
  ddpm::test::write_bytes(path, b);
  return path;
}

}  // namespace

// ---------------------------------------------------------------- item 1: old files keep loading

TEST(CheckpointReader, ReadsTheCheckpointOfTorch113) {
  // Written by this test's write_known_checkpoint with the Debian LibTorch 1.13 build.
  const std::string path = ddpm::test::data_dir() + "/checkpoint/ckpt-torch1.13.pt";
  ASSERT_TRUE(fs::exists(path)) << path;
  expect_known_checkpoint(path);
}

TEST(CheckpointReader, ReadsTheCheckpointOfTorch215) {
  // Written by write_known_checkpoint with the pip LibTorch 2.15 build. Its optimizer state is keyed
  // by decimal TensorImpl addresses where 1.13 writes "0x…" strings: each LibTorch resumes the other's.
  const std::string path = ddpm::test::data_dir() + "/checkpoint/ckpt-torch2.15.pt";
  ASSERT_TRUE(fs::exists(path)) << path;
  expect_known_checkpoint(path);
}

TEST(CheckpointReader, ReadsACheckpointOfThisBuild) {
  auto dir = ddpm::test::make_temp_dir("ddpm-ckpt-known");
  const std::string path = dir + "/ckpt.pt";
  write_known_checkpoint(path);
  expect_known_checkpoint(path);
  // DDPM_WRITE_CHECKPOINT_FIXTURE=<file>: keep the file (how tests/data/checkpoint/ was made).
  if (const char* keep = std::getenv("DDPM_WRITE_CHECKPOINT_FIXTURE")) fs::copy_file(path, keep, fs::copy_options::overwrite_existing);
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- item 1: hostile checkpoints

TEST(CheckpointReader, AStorageShorterThanItsTensorIsRefused) {
  auto dir = ddpm::test::make_temp_dir("ddpm-ckpt-short");
  Members ms = members_of(small_checkpoint(dir));
  member(ms, "/data/0").resize(8);  // the weight's 2048 floats → 2; the CRCs are rewritten valid
  ddpm::io::write_zip_stored(dir + "/short.pt", ms);
  EXPECT_NE(refusal(dir + "/short.pt").find("storage '0'"), std::string::npos);
  fs::remove_all(dir);
}

TEST(CheckpointReader, EmptiedStoragesAreRefused) {
  auto dir = ddpm::test::make_temp_dir("ddpm-ckpt-empty");
  Members ms = members_of(small_checkpoint(dir));
  for (auto& [name, bytes] : ms)
    if (name.find("/data/") != std::string::npos) bytes.clear();
  ddpm::io::write_zip_stored(dir + "/empty.pt", ms);
  EXPECT_NE(refusal(dir + "/empty.pt").find("storage"), std::string::npos);
  fs::remove_all(dir);
}

TEST(CheckpointReader, ClassCodeWithSetstateIsRefusedUnrun) {
  // LibTorch's loader runs __setstate__ from code/ while unpickling (the endless loop and
  // 8 GB allocation ran before the marker was checked); this reader never runs it, and refuses
  // a file that declares one.
  auto dir = ddpm::test::make_temp_dir("ddpm-ckpt-setstate");
  Members ms = members_of(small_checkpoint(dir));
  std::vector<uint8_t>& code = member(ms, "code/__torch__.py");
  const std::string hook = "  def __setstate__(self: __torch__.Module, state: Tuple[str]) -> None:\n"
                           "    x = torch.ones([2147483648])\n    while True:\n      pass\n";
  code.insert(code.end(), hook.begin(), hook.end());
  ddpm::io::write_zip_stored(dir + "/setstate.pt", ms);
  EXPECT_NE(refusal(dir + "/setstate.pt").find("__setstate__"), std::string::npos);
  fs::remove_all(dir);
}

TEST(CheckpointReader, ForeignClassesAndGlobalsAreRefused) {
  auto dir = ddpm::test::make_temp_dir("ddpm-ckpt-class");
  const std::string good = small_checkpoint(dir);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"c__torch__\nModule\n", "c__torch__\nEvil\n"},                       // the root's class
      {"c__torch__.___torch_mangle_0\nModule\n", "cbuiltins\nobject\n"},     // a nested archive's
      {"ccollections\nOrderedDict\n", "cos\nsystem\n"},                      // a REDUCE target
      {"ctorch\nFloatStorage\n", "ctorch\nStorage\n"},                        // a storage type
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    Members ms = members_of(good);
    std::vector<uint8_t>& pkl = member(ms, "data.pkl");
    const std::string before(pkl.begin(), pkl.end());
    replace_all(pkl, cases[k].first, cases[k].second);
    ASSERT_NE(std::string(pkl.begin(), pkl.end()), before) << cases[k].first;
    const std::string path = dir + "/class" + std::to_string(k) + ".pt";
    ddpm::io::write_zip_stored(path, ms);
    EXPECT_NE(refusal(path).find("unsupported"), std::string::npos) << cases[k].second;
  }
  fs::remove_all(dir);
}

TEST(CheckpointReader, BitFlipsInTheCodeOrPickleAreCrcErrors) {
  auto dir = ddpm::test::make_temp_dir("ddpm-ckpt-crc");
  const std::string good = small_checkpoint(dir);
  std::string bytes = ddpm::test::read_string(good);
  const ddpm::io::ZipReader zip(bytes);
  const auto* pkl = zip.find("good/data.pkl") ? zip.find("good/data.pkl") : zip.find("archive/data.pkl");
  ASSERT_NE(pkl, nullptr);
  bytes[pkl->offset + pkl->size / 2] ^= 0x20;
  ddpm::test::write_bytes(dir + "/flip.pt", bytes);
  EXPECT_NE(refusal(dir + "/flip.pt").find("CRC-32"), std::string::npos);
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- item 4: views bounded by storages

TEST(TorchFileViews, AStrideZeroBombIsRefusedWithinBoundedMemory) {
  auto dir = ddpm::test::make_temp_dir("ddpm-stride0");
  const std::vector<float> four{1, 2, 3, 4};
  // size (2^28,), stride (0,) over a 16-byte storage: 1 GiB if viewed and copied; (2^31,): 8 GiB.
  for (int64_t n : {int64_t{1} << 28, int64_t{1} << 31}) {
    const std::string zip = write_zip_pt(dir + "/bomb.pt", state_dict_pickle(4, {n}, {0}), four);
    const std::string legacy = write_legacy_pt(dir + "/bomb-legacy.pt", state_dict_pickle(4, {n}, {0}), four);
    for (const std::string& path : {zip, legacy}) {
      const std::string msg = error_of([&] { ddpm::torch_file::read_state_dict(path); });
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find("overlaps itself"), std::string::npos) << msg;
      const ChildRun r = run_in_child([&] { ddpm::torch_file::read_state_dict(path); });
      EXPECT_TRUE(r.threw);
      EXPECT_LT(r.peak_mb, rss_mb() + 256) << "MB peak for " << path;  // this process's size + the stated 256 MB
    }
  }
  fs::remove_all(dir);
}

TEST(TorchFileViews, ViewsMustLieInsideAndNotOverlap) {
  auto dir = ddpm::test::make_temp_dir("ddpm-views");
  const std::vector<float> six{0, 1, 2, 3, 4, 5};
  auto read = [&](const std::string& pickle) {
    return ddpm::torch_file::read_state_dict(write_zip_pt(dir + "/v.pt", pickle, six)).at("w");
  };
  // A transposed 2×3 view (strides (1, 2)): w[i][j] = data[i + 2j]; an offset slice.
  const at::Tensor t = read(state_dict_pickle(6, {2, 3}, {1, 2}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(t[i][j].item<float>(), static_cast<float>(i + 2 * j));
  EXPECT_TRUE(read(state_dict_pickle(6, {2}, {2}, 3)).equal(at::tensor({3.0f, 5.0f})));
  // A dimension of size 1 may have any stride; an empty tensor views nothing.
  EXPECT_EQ(read(state_dict_pickle(6, {1, 6}, {0, 1})).numel(), 6);
  EXPECT_EQ(read(state_dict_pickle(6, {0, 1000}, {1, 0})).numel(), 0);
  for (const auto& [pickle, why] : std::vector<std::pair<std::string, std::string>>{
           {state_dict_pickle(6, {3, 3}, {1, 1}), "overlaps itself"},
           {state_dict_pickle(6, {2, 3}, {2, 1}), "overlaps itself"},  // rows of 3 elements 2 apart
           {state_dict_pickle(6, {7}, {1}), "extends past its storage"},
           {state_dict_pickle(6, {2}, {1}, 5), "extends past its storage"},
           {state_dict_pickle(6, {1}, {1}, 7), "offset outside"},
           {state_dict_pickle(100, {100}, {1}), "shorter than"}}) {
    const std::string msg = error_of([&] { read(pickle); });
    EXPECT_NE(msg.find(why), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- item 7: networks sized before they are built

TEST(ModelLimits, TheClosedFormCountIsTheBuiltNetworks) {
  std::vector<ddpm::UNetConfig> configs;
  ddpm::UNetConfig base = tiny_config().model;
  base.image_height = base.image_width = 16;
  for (int64_t blocks : {0, 1, 3})
    for (const std::vector<int64_t>& mult : std::vector<std::vector<int64_t>>{{1}, {1, 2}, {2, 1, 3}}) {
      ddpm::UNetConfig c = base;
      c.num_res_blocks = blocks;
      c.channel_mult = mult;
      c.attention_resolutions = mult.size() > 1 ? std::vector<int64_t>{8} : std::vector<int64_t>{};
      configs.push_back(c);
    }
  configs.back().learned_variance = true;
  configs.back().num_classes = 5;
  configs.back().resample = "avgpool";
  configs.front().image_channels = 3;
  for (const auto& c : configs)
    EXPECT_EQ(ddpm::parameter_count(c), ddpm::count_parameters(*ddpm::UNet(c)))
        << "blocks " << c.num_res_blocks << ", levels " << c.levels();
}

TEST(ModelLimits, OversizedConfigsAreRefusedBeforeBuilding) {
  ddpm::UNetConfig wide = ddpm::UNetConfig{};
  wide.base_channels = 4000;  // the checkpoint config: > 4 GB of weights
  wide.groups = 8;
  ddpm::UNetConfig deep = ddpm::UNetConfig{};
  deep.num_res_blocks = 1000000;
  for (const auto& c : {wide, deep}) {
    const ChildRun r = run_in_child([&] { ddpm::UNet m(c); });
    EXPECT_TRUE(r.threw);
    EXPECT_LT(r.peak_mb, rss_mb() + 256);
    const std::string msg = error_of([&] { ddpm::UNet m(c); });
    EXPECT_NE(msg.find("--max-params"), std::string::npos) << msg;
  }
  // One image's activations: attention over a 512×512 map is a 275 GB matrix.
  ddpm::UNetConfig big_image = ddpm::UNetConfig{};
  big_image.image_height = big_image.image_width = 512;
  big_image.base_channels = 32;
  big_image.attention_resolutions = {512};
  EXPECT_NE(error_of([&] { ddpm::UNet m(big_image); }).find("activations"), std::string::npos);
  // The limit is the override's: a tiny network fails under 1000 parameters and builds again after.
  ddpm::UNetConfig tiny = tiny_config().model;
  const ddpm::ModelLimits saved = ddpm::model_limits();
  ddpm::model_limits().max_params = 1000;
  EXPECT_NE(error_of([&] { ddpm::UNet m(tiny); }).find("limit of 1000"), std::string::npos);
  ddpm::model_limits() = saved;
  EXPECT_EQ(error_of([&] { ddpm::UNet m(tiny); }), "");
}

TEST(ModelLimits, AHugeConfigInACheckpointIsRefusedNamingTheFile) {
  auto dir = ddpm::test::make_temp_dir("ddpm-ckpt-huge");
  ddpm::Config config = tiny_config();
  config.model.base_channels = 4000;
  torch::nn::Linear layer(4, 4);
  ddpm::CheckpointContents c;
  c.config_toml = ddpm::config_to_toml(config);
  c.model = layer.get();
  const std::string path = dir + "/ckpt.pt";
  ddpm::save_checkpoint(path, c);
  const std::string msg = error_of([&] { ddpm::load_model_for_sampling(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("--max-params"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(ModelLimits, HugeDiffusersConfigsAreRefusedBeforeBuilding) {
  // The reference model's config.json with the values: block_out_channels [12000, 24000]
  // (> 10^10 parameters), layers_per_block 10^6.
  const std::string reference = ddpm::test::read_string(ddpm::test::data_dir() + "/ddpm_ref/diffusers/config.json");
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = reference;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return ddpm::json::parse(text.replace(at, from.size(), to));
  };
  const ddpm::json::Value wide = with("\"block_out_channels\": [\n    32,\n    64\n  ]", "\"block_out_channels\": [12000, 24000]");
  const ddpm::json::Value deep = with("\"layers_per_block\": 1", "\"layers_per_block\": 1000000");
  for (const ddpm::json::Value& unet : {wide, deep}) {
    auto import = [&] {
      const ddpm::Config config = ddpm::interop::diffusers_config(unet, nullptr, "'config.json'");
      ddpm::interop::import_diffusers_weights({}, config, "'weights'");
    };
    const ChildRun r = run_in_child(import);
    EXPECT_TRUE(r.threw);
    EXPECT_LT(r.peak_mb, rss_mb() + 256);
    const std::string msg = error_of(import);
    EXPECT_NE(msg.find("'weights': base-channels: the network would have"), std::string::npos) << msg;
  }
}

TEST(ModelLimits, TorchScriptFeaturesWiderThanTheStatisticsCapAreRefused) {
  auto dir = ddpm::test::make_temp_dir("ddpm-ts-wide");
  torch::jit::Module m("Wide");
  m.define("def forward(self, x):\n    return torch.zeros([x.size(0), 25000])\n");
  m.save(dir + "/wide.pt");
  auto net = ddpm::eval::load_torchscript_features(dir + "/wide.pt", {}, c10::kCPU);
  const std::string msg = error_of([&] { net->features(at::zeros({3, 3, 8, 8}, at::kByte)); });
  EXPECT_NE(msg.find("25000-d"), std::string::npos) << msg;
  fs::remove_all(dir);
}
