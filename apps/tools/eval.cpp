// ddpm-eval: sample quality numbers between two image sets.
//   ddpm-eval compare --real SRC (--fake SRC | --checkpoint RUN --n N) --features F   FID, KID, precision/recall
//   ddpm-eval stats --data SRC --features F --out ref.npz                            reference statistics
//   ddpm-eval fit-classifier --data idx:IMAGES --labels idx:LABELS --out clf.pt      a feature network
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ddpm/data/dataset.hpp"
#include "ddpm/eval/classifier.hpp"
#include "ddpm/eval/evaluator.hpp"
#include "ddpm/io/atomic_file.hpp"
#include "ddpm/eval/features.hpp"
#include "ddpm/eval/image_set.hpp"
#include "ddpm/eval/kid.hpp"
#include "ddpm/eval/precision_recall.hpp"
#include "ddpm/eval/stats.hpp"
#include "ddpm/eval/stats_file.hpp"
#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/train/distill.hpp"
#include "ddpm/train/tensorboard.hpp"
#include "ddpm/util/errors.hpp"
#include "tools/common.hpp"
#include "tools/cpu_env.hpp"
#include "tools/local_launch.hpp"
#include "tools/local_slices.hpp"
#include "tools/options.hpp"
#include "tools/progress.hpp"
#include "tools/sample_guide.hpp"
#include "tools/tools.hpp"

namespace ddpm::cli {
namespace {

using namespace ddpm::eval;

struct SetOptions {
  GridLayout grid;
  int64_t channels = 0;
  int64_t batch_size = 250;
};

struct CompareOptions {
  std::string real, fake, checkpoint, features, json, save_real_stats, log_to;
  int64_t n = 2000, limit_real = 0, limit_fake = 0, sample_batch = 250;
  Guidance guidance;
  std::vector<double> guidance_interval;
  bool no_ema = false, fid = true, kid = true, pr = true;
  KidOptions kid_options;
  int64_t pr_k = 3;
  ScriptOptions script;
  std::string script_input = "uint8";
  int nproc = 1;
};

// Images that --nproc-per-node's ranks drew: `drawn` (the set they drew from) describes them,
// `slices` holds them.
class GatheredSet : public ImageSet {
 public:
  GatheredSet(std::unique_ptr<ImageSet> drawn, std::unique_ptr<LocalSlices> slices)
      : drawn_(std::move(drawn)), slices_(std::move(slices)) {}
  int64_t size() const override { return drawn_->size(); }
  int64_t channels() const override { return drawn_->channels(); }
  int64_t height() const override { return drawn_->height(); }
  int64_t width() const override { return drawn_->width(); }
  at::Tensor batch(int64_t start, int64_t count) override {
    at::Tensor images = at::empty({count, channels(), height(), width()}, at::kByte);
    slices_->read(start, count, images.data_ptr<uint8_t>());
    return images;
  }
  std::string describe() const override { return drawn_->describe(); }

 private:
  std::unique_ptr<ImageSet> drawn_;
  std::unique_ptr<LocalSlices> slices_;
};

// A rank of --nproc-per-node: its slice of `set`, sample_batch images at a time, into its file.
void draw_slice(ImageSet& set, const SliceTask& task, int64_t sample_batch) {
  const Slice s = task.slice(set.size());
  const int64_t bytes = set.channels() * set.height() * set.width();
  SliceWriter writer(task.out, s.count, bytes);
  for (int64_t first = s.first; first < s.first + s.count; first += sample_batch) {
    const at::Tensor images = set.batch(first, std::min(sample_batch, s.first + s.count - first)).contiguous();
    for (int64_t j = 0; j < images.size(0); ++j) writer.append(images.data_ptr<uint8_t>() + j * bytes);
  }
  writer.commit();
}

void add_set_options(CLI::App& app, SetOptions& o) {
  app.add_option("--grid-cols", o.grid.cols, "grid: sources: images per row (nrow of the grid)")->capture_default_str();
  app.add_option("--grid-rows", o.grid.rows, "grid: sources: rows (0 = from the height, square cells)")->capture_default_str();
  app.add_option("--grid-padding", o.grid.padding, "grid: sources: pixels between and around cells")->capture_default_str();
  app.add_option("--grid-count", o.grid.count, "grid: sources: images in the grid (0 = every cell)")->capture_default_str();
  app.add_option("--channels", o.channels, "Convert images to 1, 3 or 4 channels (0 = keep)")->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "Images per feature batch")->capture_default_str()->check(CLI::PositiveNumber);
}

void add_feature_options(CLI::App& app, std::string& features, ScriptOptions&, std::string& script_input) {
  app.add_option("--features", features,
                 "Feature network: a libddpm classifier (fit-classifier) or a TorchScript file; "
                 "prefix classifier: or torchscript: to force the kind")
      ->required();
  app.add_option("--script-input", script_input, "TorchScript input: uint8 (0..255), unit ([0,1]) or signed ([-1,1])")
      ->capture_default_str();
}

// A progress bar on stderr over `total` images, and the callback that moves it.
std::unique_ptr<Progress> feature_bar(const std::string& label, int64_t total) {
  return std::make_unique<Progress>(label, total, 0, 0, std::max<int64_t>(1, total / 4), stderr);
}
std::function<void(int64_t, int64_t)> moves(Progress& bar) {
  return [&bar](int64_t done, int64_t) { bar.update(done); };
}

void check_same_shape(const ImageSet& a, const ImageSet& b) {
  if (a.channels() != b.channels() || a.height() != b.height() || a.width() != b.width())
    bad_input("image sets", "real images are " + std::to_string(a.channels()) + "×" + std::to_string(a.height()) +
                                "×" + std::to_string(a.width()) + " but fake images are " +
                                std::to_string(b.channels()) + "×" + std::to_string(b.height()) + "×" +
                                std::to_string(b.width()) + " (use --channels to convert)");
}

int run_compare(CLI::App& app, int argc, char** argv, CompareOptions& o, SetOptions& so, SamplerConfig& sampler,
                const RuntimeOptions& runtime) {
  const std::optional<SliceTask> task = slice_task_from_environment();  // a rank of --nproc-per-node
  const c10::Device device = apply_runtime(task ? rank_runtime(runtime) : runtime);
  if (o.fake.empty() == o.checkpoint.empty()) bad_input("compare", "give exactly one of --fake and --checkpoint");
  if (o.nproc > 1 && o.checkpoint.empty()) bad_input("--nproc-per-node", "needs --checkpoint (the ranks share out its sampling)");
  if (o.guidance.weight != 0.0 && o.checkpoint.empty()) bad_input("--guidance", "needs --checkpoint (samples drawn here)");
  if (!o.guidance_interval.empty() && o.guidance.weight == 0.0) bad_input("--guidance-interval", "needs --guidance");
  set_guidance_interval(o.guidance, o.guidance_interval);
  if (!o.log_to.empty()) {
    if (o.checkpoint.empty()) bad_input("--log-to", "needs --checkpoint (its step places the point on the curves)");
    if (!std::filesystem::is_directory(o.log_to)) bad_input("--log-to", "'" + o.log_to + "' is not a directory");
  }
  int64_t checkpoint_step = 0;
  o.script.input = parse_script_input(o.script_input);
  std::unique_ptr<FeatureNetwork> net;
  if (!task) net = load_feature_network(o.features, o.script, device);

  // The sampling progress bar: the sampled set draws its images later, when its features are
  // computed, so the callback's state must outlive this block (declared before `fake`).
  std::unique_ptr<Progress> bar;
  int64_t batches_done = 0;
  std::unique_ptr<ImageSet> fake;
  if (!o.checkpoint.empty()) {
    LoadedModel loaded = load_model_for_sampling(o.checkpoint, device, !o.no_ema);
    checkpoint_step = loaded.step;
    // Sampler defaults: the checkpoint's (its grids'); options given here override them.
    sampler = loaded.config.sample;
    app.clear();
    app.parse(argc, argv);
    if (const std::string w = distilled_sampler_warning(loaded.config, sampler, o.guidance.weight); !w.empty())
      spdlog::warn("{}: {}", loaded.path, w);
    const int64_t batches = (o.n + o.sample_batch - 1) / o.sample_batch;
    std::function<void(int64_t, int64_t)> progress = [&, batches](int64_t step, int64_t total) {
      if (!bar) bar = std::make_unique<Progress>("sample", total * batches, 0, 0, std::max<int64_t>(1, total), stderr);
      bar->update(std::min(batches_done * total + step, total * batches));
      if (step == total) ++batches_done;
    };
    if (task || o.nproc > 1) progress = nullptr;  // the ranks draw quietly
    fake = sampled_image_set(std::move(loaded), sampler, o.n, progress, o.guidance);
    so.batch_size = o.sample_batch;
    if (task) {
      draw_slice(*fake, *task, o.sample_batch);
      return 0;
    }
  } else {
    fake = open_image_set(o.fake, so.grid, so.channels, o.limit_fake);
  }

  EvalOptions options;
  options.fid = o.fid;
  options.kid = o.kid;
  options.pr = o.pr;
  options.kid_options = o.kid_options;
  options.pr_k = o.pr_k;
  options.batch_size = so.batch_size;
  Evaluator evaluator(std::move(net), options);
  std::unique_ptr<ImageSet> real;
  if (is_stats_file(o.real)) {
    evaluator.reference_from_stats(o.real);
    if (o.kid || o.pr) spdlog::info("--real is a statistics file: KID and precision/recall need features, skipped");
  } else {
    real = open_image_set(o.real, so.grid, so.channels, o.limit_real);
    check_same_shape(*real, *fake);
  }
  std::printf("features: %s\nreal: %s\n", evaluator.network().describe().c_str(),
              (real ? real->describe() : evaluator.reference().description).c_str());
  std::fflush(stdout);
  if (real) {
    auto bar = feature_bar("real", real->size());
    evaluator.reference_from_images(*real, moves(*bar));
    bar->finish();
  }
  if (o.nproc > 1) {  // after the real set is checked: the ranks draw the fake set now
    auto slices = std::make_unique<LocalSlices>(o.nproc, argc, argv, fake->size(),
                                                fake->channels() * fake->height() * fake->width());
    fake = std::make_unique<GatheredSet>(std::move(fake), std::move(slices));
  }
  auto bar_fake = feature_bar("fake", fake->size());
  const at::Tensor fake_features = evaluator.features_of(*fake, moves(*bar_fake));
  bar_fake->finish();
  std::printf("fake: %s\n", fake->describe().c_str());
  const EvalResult r = evaluator.compare(fake_features, fake->describe(), o.real);
  if (!o.save_real_stats.empty() && real) {
    write_stats_npz(o.save_real_stats, evaluator.reference().stats);
    std::printf("wrote %s\n", o.save_real_stats.c_str());
  }

  EvalScores scores;
  scores.step = checkpoint_step;
  scores.fid = r.fid;
  if (r.fid) std::printf("FID %.4f\n", *r.fid);
  if (r.kid) {
    scores.kid = r.kid->mean;
    const KidResult& k = *r.kid;
    std::printf("KID %.6f ± %.6f (%lld subsets of %lld)\n", k.mean, k.std, static_cast<long long>(k.subsets),
                static_cast<long long>(k.subset_size));
  }
  if (r.pr) {
    const PrecisionRecall& pr = *r.pr;
    std::printf("precision %.4f  recall %.4f (k = %lld)\n", pr.precision, pr.recall, static_cast<long long>(pr.k));
    scores.precision = pr.precision;
    scores.recall = pr.recall;
  }
  if (!o.json.empty()) io::write_file_atomically(o.json, r.to_json() + "\n");
  if (!o.log_to.empty()) {
    // A run of its own beside the training's (RUN/eval): evaluations of older checkpoints, made
    // while the run trains on, never disturb the training's events files.
    TensorBoardLog log((std::filesystem::path(o.log_to) / "eval").string());
    log.eval(scores);
    std::printf("logged eval/* at step %lld to %s\n", static_cast<long long>(scores.step), log.path().c_str());
  }
  return 0;
}

struct StatsOptions {
  std::string data, features, out, script_input = "uint8";
  int64_t limit = 0;
  ScriptOptions script;
};

int run_stats(StatsOptions& o, const SetOptions& so, const RuntimeOptions& runtime) {
  const c10::Device device = apply_runtime(runtime);
  o.script.input = parse_script_input(o.script_input);
  std::unique_ptr<FeatureNetwork> net = load_feature_network(o.features, o.script, device);
  std::unique_ptr<ImageSet> set = open_image_set(o.data, so.grid, so.channels, o.limit);
  std::printf("features: %s\ndata: %s\n", net->describe().c_str(), set->describe().c_str());
  auto bar = feature_bar("stats", set->size());
  const at::Tensor features = compute_features(*net, *set, so.batch_size, moves(*bar));
  bar->finish();
  FeatureStats stats = compute_stats(features, net->describe());
  write_stats_npz(o.out, stats);
  std::printf("wrote %s (%lld images, %lld-d)\n", o.out.c_str(), static_cast<long long>(stats.count),
              static_cast<long long>(stats.dim()));
  return 0;
}

struct FitCliOptions {
  std::string data, labels, test_data, test_labels, out = "classifier.pt";
  double holdout = 0.1;
  ClassifierConfig config;
  FitOptions fit;
};

int run_fit(FitCliOptions& o, const RuntimeOptions& runtime) {
  apply_runtime(runtime);
  auto idx_path = [](const std::string& s) { return s.rfind("idx:", 0) == 0 ? s.substr(4) : s; };
  at::Tensor images = read_idx_images(idx_path(o.data)), labels = read_idx_labels(idx_path(o.labels));
  if (images.size(0) != labels.size(0))
    bad_input("--labels", std::to_string(labels.size(0)) + " labels for " + std::to_string(images.size(0)) + " images");
  at::Tensor test_images, test_labels;
  if (o.test_data.empty() != o.test_labels.empty()) bad_input("--test-data", "give both --test-data and --test-labels");
  if (!o.test_data.empty()) {
    test_images = read_idx_images(idx_path(o.test_data));
    test_labels = read_idx_labels(idx_path(o.test_labels));
  } else {
    if (!(o.holdout > 0 && o.holdout < 1)) bad_input("--holdout", "must be in (0, 1)");
    const int64_t n_test = std::max<int64_t>(1, static_cast<int64_t>(images.size(0) * o.holdout));
    if (n_test >= images.size(0)) bad_input("--data", "too few images to hold out a test set");
    test_images = images.narrow(0, images.size(0) - n_test, n_test);
    test_labels = labels.narrow(0, images.size(0) - n_test, n_test);
    images = images.narrow(0, 0, images.size(0) - n_test);
    labels = labels.narrow(0, 0, labels.size(0) - n_test);
  }
  o.config.channels = images.size(1);
  o.config.height = images.size(2);
  o.config.width = images.size(3);
  if (o.config.classes == 0) o.config.classes = labels.max().item<int64_t>() + 1;
  at::manual_seed(o.fit.seed);
  Classifier model(o.config);
  const int64_t batches = (images.size(0) + o.fit.batch_size - 1) / o.fit.batch_size;
  Progress bar("fit", batches * o.fit.epochs, 0, o.fit.batch_size, std::max<int64_t>(1, batches / 4), stderr);
  FitReport r = fit_classifier(model, images, labels, test_images, test_labels, o.fit,
                               [&](int64_t epoch, int64_t b, int64_t per_epoch) { bar.update(epoch * per_epoch + b); });
  bar.finish();
  save_classifier(o.out, model, r.test_accuracy);
  std::printf("classifier %s: %lld classes, %lld-d features; trained on %lld images (%lld epochs, %.0f s), "
              "last-epoch loss %.4f\ntest accuracy %.4f on %lld images\n",
              o.out.c_str(), static_cast<long long>(o.config.classes), static_cast<long long>(o.config.hidden),
              static_cast<long long>(r.train_count), static_cast<long long>(o.fit.epochs), r.seconds,
              r.final_train_loss, r.test_accuracy, static_cast<long long>(r.test_count));
  return 0;
}

}  // namespace

int eval_main(int argc, char** argv) {
  tune_cpu_environment(argv);  // may re-execute the program (see cpu_env.hpp)
  CLI::App app{
      "ddpm-eval: sample quality between two image sets — FID (Fréchet distance of features), KID\n"
      "(unbiased MMD², cubic kernel) and precision/recall (Kynkäänniemi et al. 2019, k = 3).\n"
      "Image sets: a folder, idx:FILE, grid:PNG (see --grid-*), a checkpoint (--checkpoint RUN --n N),\n"
      "or for --real a .npz of reference statistics (pytorch-fid layout: mu, sigma; FID only).\n"
      "Features: a classifier trained by `ddpm-eval fit-classifier` (for 28×28 gray data), or a\n"
      "TorchScript module, e.g. NVIDIA's Inception-v3 of StyleGAN2-ADA/EDM (inception-2015-12-05.pt,\n"
      "from nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/): it is called as\n"
      "forward(images, return_features=True) on uint8 [N, 3, H, W] (gray repeated to 3 channels),\n"
      "which is the default here (--script-input uint8)."};
  app.name("ddpm-eval");
  app.require_subcommand(1);
  RuntimeOptions runtime;  // --device, --threads, ... belong to each subcommand (they follow its name)

  CLI::App* compare = app.add_subcommand("compare", "FID, KID, precision/recall between --real and --fake/--checkpoint");
  CompareOptions co;
  SetOptions so;
  SamplerConfig sampler;
  compare->add_option("--real", co.real, "Reference images (folder, idx:FILE, grid:PNG) or statistics (.npz)")->required();
  compare->add_option("--fake", co.fake, "Images to evaluate (folder, idx:FILE, grid:PNG)");
  compare->add_option("--checkpoint", co.checkpoint, "Or sample the images to evaluate from this checkpoint / run directory");
  compare->add_option("--n", co.n, "Samples to draw from --checkpoint")->capture_default_str()->check(CLI::PositiveNumber);
  compare->add_option("--sample-batch", co.sample_batch, "Images per sampling batch")->capture_default_str()->check(CLI::PositiveNumber);
  compare->add_option("--guidance", co.guidance.weight,
                      "Class-conditional --checkpoint: classifier-free guidance weight w (0 = plain conditional); "
                      "every class is drawn equally")
      ->capture_default_str();
  add_guidance_interval_option(*compare, co.guidance_interval);
  add_nproc_option(*compare, co.nproc,
                   "Draw the --checkpoint samples on this many local processes (ranks) of this program, each a "
                   "contiguous slice with 1 thread (or --threads each); the samples are those of one process");
  compare->add_flag("--no-ema", co.no_ema, "Sample with the raw weights instead of the EMA weights");
  compare->add_option("--limit-real", co.limit_real, "Use only the first N real images (0 = all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  compare->add_option("--limit-fake", co.limit_fake, "Use only the first N fake images (0 = all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  add_feature_options(*compare, co.features, co.script, co.script_input);
  compare->add_flag("--fid,!--no-fid", co.fid, "Report FID");
  compare->add_flag("--kid,!--no-kid", co.kid, "Report KID");
  compare->add_flag("--pr,!--no-pr", co.pr, "Report precision/recall");
  compare->add_option("--kid-subsets", co.kid_options.subsets, "KID subsets")->capture_default_str()->check(CLI::PositiveNumber);
  compare->add_option("--kid-subset-size", co.kid_options.subset_size, "KID subset size (capped by the set sizes)")
      ->capture_default_str()->check(CLI::Range(int64_t{2}, int64_t{1} << 40));
  compare->add_option("--pr-k", co.pr_k, "Nearest neighbour for the precision/recall radii")->capture_default_str()->check(CLI::PositiveNumber);
  compare->add_option("--json", co.json, "Also write the results as one JSON object to this file");
  compare->add_option("--save-real-stats", co.save_real_stats, "Also write the real set's statistics (.npz)");
  compare->add_option("--log-to", co.log_to,
                      "With --checkpoint: add the results to this run directory's TensorBoard log (eval/fid, ... at "
                      "the checkpoint's step, in RUN/eval/)");
  add_set_options(*compare, so);
  add_sampler_options(*compare, sampler);
  add_runtime_options(*compare, runtime);

  CLI::App* stats = app.add_subcommand("stats", "Reference statistics (mu, sigma) of an image set, as .npz");
  StatsOptions sto;
  SetOptions sso;
  stats->add_option("--data", sto.data, "Images (folder, idx:FILE, grid:PNG)")->required();
  stats->add_option("--out", sto.out, "The .npz file to write")->required();
  stats->add_option("--limit", sto.limit, "Use only the first N images (0 = all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  add_feature_options(*stats, sto.features, sto.script, sto.script_input);
  add_set_options(*stats, sso);
  add_runtime_options(*stats, runtime);

  CLI::App* fit = app.add_subcommand("fit-classifier", "Train the small CNN whose penultimate layer gives features");
  FitCliOptions fo;
  fit->add_option("--data", fo.data, "Training images: idx:FILE (MNIST-family IDX, .gz read directly)")->required();
  fit->add_option("--labels", fo.labels, "Their labels: idx:FILE")->required();
  fit->add_option("--test-data", fo.test_data, "Test images (default: hold out the last --holdout of --data)");
  fit->add_option("--test-labels", fo.test_labels, "Test labels");
  fit->add_option("--holdout", fo.holdout, "Fraction held out as the test set without --test-data")->capture_default_str();
  fit->add_option("--out", fo.out, "The classifier file")->capture_default_str();
  fit->add_option("--epochs", fo.fit.epochs, "Epochs")->capture_default_str()->check(CLI::PositiveNumber);
  fit->add_option("--batch-size", fo.fit.batch_size, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  fit->add_option("--lr", fo.fit.lr, "Adam learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  fit->add_option("--seed", fo.fit.seed, "Initialisation and shuffling seed")->capture_default_str();
  fit->add_option("--classes", fo.config.classes, "Classes (0 = 1 + the largest label)")->capture_default_str();
  fo.config.classes = 0;
  fit->add_option("--hidden", fo.config.hidden, "Feature dimension (the penultimate layer)")->capture_default_str()->check(CLI::PositiveNumber);
  add_runtime_options(*fit, runtime);

  return run_app(app, argc, argv, [&] {
    if (compare->parsed()) return run_compare(app, argc, argv, co, so, sampler, runtime);
    if (stats->parsed()) return run_stats(sto, sso, runtime);
    return run_fit(fo, runtime);
  });
}

}  // namespace ddpm::cli
