// Progressive distillation (ddpm/train/distill.hpp, ddpm-distill): the step grids, the target
// against the samplers' own DDIM on the exact Gaussian denoiser, one round of a real student
// against its teacher, the student's config, and the tool end to end (round trip, warnings,
// bad input, exact resume).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "ddpm/data/dataset.hpp"
#include "ddpm/data/image.hpp"
#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/pipeline/config.hpp"
#include "ddpm/train/distill.hpp"
#include "ddpm/train/trainer.hpp"
#include "gaussian_denoiser.hpp"
#include "test_util.hpp"
#include "train_fixtures.hpp"

namespace fs = std::filesystem;
using ddpm::Prediction;
using ddpm::test::run_command;
using ddpm::test::tool_path;

namespace {

ddpm::NoiseSchedule linear_schedule(int64_t T) {
  ddpm::ScheduleConfig sc;
  sc.kind = "linear";
  sc.timesteps = T;
  return ddpm::NoiseSchedule(sc);
}

using ddpm::test::disc_images;
using ddpm::test::lines_of;

ddpm::Config tiny_config(const std::string& run_dir) {
  ddpm::Config c = ddpm::test::tiny_train_config(run_dir);
  c.train.log_every = 1000;
  return c;
}

// One DDIM (η = 0) step of `den` (output p) from z at step.t to step.t_lo.
at::Tensor one_ddim_step(const ddpm::Denoiser& den, Prediction p, const ddpm::NoiseSchedule& s, const at::Tensor& z,
                         const ddpm::DistillStep& step) {
  const at::Tensor ab = ddpm::alpha_bar_or_one(s, step.t, z.device());
  const at::Tensor ab_lo = ddpm::alpha_bar_or_one(s, step.t_lo, z.device());
  const at::Tensor out = den(z, step.t);
  const at::Tensor x0 = ddpm::predict_x0(p, z, out, ab), eps = ddpm::predict_eps(p, z, out, ab);
  return x0 * ab_lo.sqrt().to(at::kFloat) + eps * (1.0 - ab_lo).sqrt().to(at::kFloat);
}

}  // namespace

// Student step i of N runs from the sampler's own trailing point i to point i − 1 (−1 after the
// first), through a point of the teacher's 2N-step grid; drawn t = 0..T−1 visit every step
// nearly equally (exactly when N divides T).
TEST(DistillSteps, StudentPointsAreTheDdimTrailingGridAndNestInTheTeachers) {
  for (int64_t T : {1000, 100, 37}) {
    for (int64_t N = 1; 2 * N <= T; N *= 2) {
      const auto student = ddpm::timestep_subset(T, N, ddpm::Spacing::Trailing);
      const auto teacher = ddpm::timestep_subset(T, 2 * N, ddpm::Spacing::Trailing);
      const at::Tensor drawn = at::arange(T, at::kLong);
      const ddpm::DistillStep s = ddpm::distill_steps(drawn, T, N);
      std::vector<int64_t> visits(static_cast<size_t>(N), 0);
      for (int64_t k = 0; k < T; ++k) {
        const int64_t t = s.t[k].item<int64_t>(), mid = s.t_mid[k].item<int64_t>(), lo = s.t_lo[k].item<int64_t>();
        const auto it = std::find(student.begin(), student.end(), t);
        ASSERT_NE(it, student.end()) << "T " << T << " N " << N << " t " << t;
        const auto i = it - student.begin();  // 0-based: step i + 1
        ++visits[static_cast<size_t>(i)];
        EXPECT_EQ(lo, i == 0 ? -1 : student[static_cast<size_t>(i - 1)]);
        EXPECT_EQ(teacher[static_cast<size_t>(2 * i + 1)], t);  // every student point is a teacher point
        EXPECT_EQ(teacher[static_cast<size_t>(2 * i)], mid);
        EXPECT_LT(lo, mid);
        EXPECT_LT(mid, t);
      }
      const auto [lo, hi] = std::minmax_element(visits.begin(), visits.end());
      EXPECT_LE(*hi - *lo, 1) << "T " << T << " N " << N;
    }
  }
}

// On the exact denoiser of Gaussian data: the target's z_lo is bit-for-bit what the library's
// own DDIM sampler makes in two steps from the same x_T, and one DDIM step with x̂₀ = x̃ lands on
// it (the definition of the target, checked by stepping, not by the formula).
TEST(DistillTarget, TwoTeacherStepsAreTheSamplersDdimAndOneStepWithTheTargetLandsThere) {
  const int64_t T = 100;
  const auto s = linear_schedule(T);
  for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
    ddpm::test::ExactDenoiser exact(s, {0.3}, {0.5}, p);
    const ddpm::Denoiser teacher = [&exact](const at::Tensor& x, const at::Tensor& t) { return exact(x, t); };
    ddpm::SamplerConfig sc;
    sc.kind = ddpm::SamplerKind::Ddim;
    sc.steps = 2;
    sc.spacing = ddpm::Spacing::Trailing;
    sc.prediction = p;
    sc.seed = 7;
    const at::Tensor sampled = ddpm::sample(s, teacher, sc, 4, 1, 4, 4);
    const at::Tensor xT = ddpm::NoiseStream(7, 0, 4, {1, 4, 4}).next();
    const ddpm::DistillStep last = ddpm::distill_steps(at::full({4}, T - 1, at::kLong), T, 1);
    const ddpm::DistillTarget target = ddpm::distillation_target(teacher, p, false, s, xT, last);
    EXPECT_TRUE(at::allclose(target.z_lo, sampled, 1e-5, 1e-5)) << ddpm::to_string(p);
    EXPECT_TRUE(at::allclose(target.x0, target.z_lo)) << "to x0 the target is z_lo itself";

    // An inner step (N = 4, step 3: t = 74 → 49 via 61): one step with x̃ reaches z_lo.
    const ddpm::DistillStep inner = ddpm::distill_steps(at::full({4}, 60, at::kLong), T, 4);
    ASSERT_EQ(inner.t[0].item<int64_t>(), 74);
    ASSERT_EQ(inner.t_lo[0].item<int64_t>(), 49);
    const at::Tensor z = ddpm::NoiseStream(8, 0, 4, {1, 4, 4}).next();
    const ddpm::DistillTarget t2 = ddpm::distillation_target(teacher, p, false, s, z, inner);
    const ddpm::Denoiser with_target_x0 = [&](const at::Tensor&, const at::Tensor&) { return t2.x0; };
    const at::Tensor landed = one_ddim_step(with_target_x0, Prediction::X0, s, z, inner);
    EXPECT_TRUE(at::allclose(landed, t2.z_lo, 1e-4, 1e-5)) << (landed - t2.z_lo).abs().max().item<double>();
    // ... while the teacher's own single step does not (the gap distillation closes).
    const double gap = (one_ddim_step(teacher, p, s, z, inner) - t2.z_lo).abs().max().item<double>();
    EXPECT_GT(gap, 1e-3) << ddpm::to_string(p);
  }
}

TEST(DistillTarget, TruncatedSnrWeightIsMaxOfSnrAndOne) {
  const at::Tensor ab = at::tensor(std::vector<double>{1e-4, 0.3, 0.5, 0.8, 0.999}, at::kDouble);
  const at::Tensor w = ddpm::truncated_snr_weight(ab);
  const std::vector<double> expected{1.0, 1.0, 1.0, 4.0, 999.0};
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(w[static_cast<int64_t>(i)].item<double>(), expected[i], 1e-9 * expected[i]);
}

// The test that can fail: a tiny U-Net teacher (v, trained briefly on 16 disc images), one round
// 4 → 2 steps. Before training the student IS the teacher, so its single step misses the
// teacher's two steps by the teacher's own gap; after 200 steps it must miss by at most half
// of it (measured: see the printed ratio) on fresh noise.
TEST(Distill, OneRoundHalvesTheGapToTheTeachersTwoSteps) {
  const auto dir = ddpm::test::make_temp_dir("ddpm-distill-round");
  const auto data = disc_images();
  ddpm::Config tc = tiny_config(dir + "/teacher");
  tc.train.prediction = Prediction::V;
  tc.train.steps = 60;
  tc.train.lr = 2e-3;
  {
    ddpm::TrainerOptions o;
    o.on_event = [](const std::string&) {};
    ddpm::Trainer teacher(tc, data, c10::kCPU, o);
    teacher.fit();
  }
  const ddpm::LoadedModel teacher = ddpm::load_model_for_sampling(dir + "/teacher");
  ddpm::Config opts = tiny_config(dir + "/student");
  opts.distill.teacher = dir + "/teacher";
  opts.distill.start_steps = 4;
  opts.distill.final_steps = 2;
  opts.distill.steps_per_round = 200;
  opts.train.lr = 1e-3;
  opts.train.ema_decay = 0.0;
  const ddpm::Config sc = ddpm::student_config(teacher.config, opts);
  ASSERT_EQ(sc.train.steps, 200);
  ASSERT_EQ(sc.train.prediction, Prediction::V);
  auto objective = std::make_shared<ddpm::DistillObjective>(sc, teacher.model, teacher.config, c10::kCPU);
  ddpm::TrainerOptions o;
  o.write_files = false;
  o.objective = objective;
  o.on_event = [](const std::string&) {};
  ddpm::Trainer student(sc, data, c10::kCPU, o);
  student.init_weights(dir + "/teacher");

  // Fresh noise on the 16 images, 4 draws each, at both student steps.
  const auto& s = teacher.schedule;
  std::vector<at::Tensor> clean;
  for (int draw = 0; draw < 4; ++draw)
    for (int64_t k = 0; k < data->size(); ++k) clean.push_back(data->get(k).unsqueeze(0));
  const at::Tensor x0 = at::cat(clean).to(at::kFloat) / 127.5 - 1.0;
  const int64_t B = x0.size(0);
  const at::Tensor eps = ddpm::NoiseStream(12345, 0, B, {1, 8, 8}).next();
  const ddpm::Denoiser teacher_den = objective->teacher({});
  auto gap = [&](ddpm::UNet net) {
    c10::NoGradGuard no_grad;
    net->eval();
    const ddpm::Denoiser den = [net](const at::Tensor& x, const at::Tensor& t) mutable { return net->forward(x, t); };
    double sum = 0;
    for (int64_t t : {99, 49}) {  // the two student points of N = 2 (T = 100)
      const ddpm::DistillStep step = ddpm::distill_steps(at::full({B}, t, at::kLong), 100, 2);
      const at::Tensor ab = ddpm::alpha_bar_or_one(s, step.t, c10::kCPU);
      const at::Tensor z = x0 * ab.sqrt().to(at::kFloat) + eps * (1.0 - ab).sqrt().to(at::kFloat);
      const at::Tensor two = ddpm::distillation_target(teacher_den, Prediction::V, false, s, z, step).z_lo;
      sum += (one_ddim_step(den, Prediction::V, s, z, step) - two).pow(2).mean().item<double>();
    }
    return sum;
  };
  const double teacher_gap = gap(teacher.model);
  const double before = gap(student.model());
  EXPECT_NEAR(before, teacher_gap, 1e-6 * teacher_gap) << "the student starts as the teacher";
  ASSERT_GT(teacher_gap, 1e-4) << "the teacher's one and two steps must differ for the test to mean anything";
  student.fit();
  const double after = gap(student.model());
  std::printf("one-step gap to the teacher's two steps: teacher %.5f, student after one round %.5f (ratio %.3f)\n",
              teacher_gap, after, after / teacher_gap);
  EXPECT_LT(after, 0.5 * teacher_gap);
  fs::remove_all(dir);
}

TEST(DistillConfig, StudentConfigRecordsAndChecks) {
  ddpm::Config teacher = tiny_config("t");
  teacher.train.prediction = Prediction::Epsilon;
  teacher.sample.kind = ddpm::SamplerKind::Ddpm;
  teacher.sample.clip_x0 = true;
  ddpm::Config o = tiny_config("s");
  o.distill.teacher = "t";
  o.distill.start_steps = 16;
  o.distill.final_steps = 2;
  o.distill.steps_per_round = 10;
  ddpm::Config c = ddpm::student_config(teacher, o);
  EXPECT_EQ(c.train.prediction, Prediction::V) << "an epsilon teacher gives a v student";
  EXPECT_EQ(c.distill.rounds(), 3);
  EXPECT_EQ(c.train.steps, 30);
  EXPECT_EQ(c.distill.distilled_steps, 8);
  EXPECT_EQ(c.distill.distilled_rounds, 0);
  EXPECT_EQ(c.sample.kind, ddpm::SamplerKind::Ddim);
  EXPECT_EQ(c.sample.steps, 8);
  EXPECT_EQ(c.sample.spacing, ddpm::Spacing::Trailing);
  EXPECT_FALSE(c.sample.clip_x0);
  // At a round's end the checkpoint holds that round's student: it records its steps (it recorded
  // the next round's target, so a checkpoint saved there sampled with half its steps).
  ddpm::record_distillation(c, 10);
  EXPECT_EQ(c.distill.distilled_rounds, 1);
  EXPECT_EQ(c.distill.distilled_steps, 8);
  EXPECT_EQ(c.sample.steps, 8);
  ddpm::record_distillation(c, 11);
  EXPECT_EQ(c.distill.distilled_steps, 4);
  ddpm::record_distillation(c, 19);
  EXPECT_EQ(c.distill.distilled_rounds, 1);
  EXPECT_EQ(c.distill.distilled_steps, 4);
  ddpm::record_distillation(c, 30);
  EXPECT_EQ(c.distill.distilled_rounds, 3);
  EXPECT_EQ(c.distill.distilled_steps, 2);
  EXPECT_EQ(c.sample.steps, 2);
  // The record survives the TOML round trip (what checkpoints and config.toml hold).
  const ddpm::Config back = ddpm::config_from_toml(ddpm::config_to_toml(c));
  EXPECT_EQ(back.distill.distilled_steps, 2);
  EXPECT_EQ(back.distill.teacher, "t");
  EXPECT_TRUE(back.distill.guidance_given);
  EXPECT_EQ(back.distill.guidance.weight, 0.0);

  auto error = [&](ddpm::Config opts) { return ddpm::test::error_of([&] { ddpm::student_config(teacher, opts); }); };
  ddpm::Config bad = o;
  bad.distill.final_steps = 3;
  EXPECT_EQ(error(bad).rfind("final-steps:", 0), 0u) << error(bad);
  bad = o;
  bad.distill.start_steps = 128;
  bad.distill.final_steps = 1;
  EXPECT_EQ(error(bad).rfind("start-steps:", 0), 0u) << error(bad);  // T = 100
  bad = o;
  bad.distill.guidance.weight = 2.0;
  bad.distill.guidance_given = true;
  EXPECT_EQ(error(bad).rfind("guidance:", 0), 0u) << error(bad);  // unconditional teacher
  bad = o;
  bad.distill.guidance.sigma_low = 0.3;  // an interval without its weight was silently replaced by the teacher's
  EXPECT_EQ(error(bad).rfind("guidance-interval:", 0), 0u) << error(bad);
  ddpm::Config distilled_teacher = c;                               // a student distilled for 2 steps
  {  // a student that learned guidance must not be guided again as a teacher
    ddpm::Config guided_student = c;
    guided_student.model.num_classes = 3;
    guided_student.distill.guidance.weight = 2.0;
    ddpm::Config again = o;
    again.distill.start_steps = 2;
    again.distill.final_steps = 1;
    again.distill.guidance.weight = 2.0;
    again.distill.guidance_given = true;
    const std::string e = ddpm::test::error_of([&] { ddpm::student_config(guided_student, again); });
    EXPECT_EQ(e.rfind("guidance:", 0), 0u) << e;
    again.distill.guidance.weight = 0.0;
    EXPECT_EQ(ddpm::test::error_of([&] { ddpm::student_config(guided_student, again); }), "");
  }
  EXPECT_EQ(ddpm::test::error_of([&] { ddpm::student_config(distilled_teacher, o); }).rfind("start-steps:", 0), 0u);

  // Conditional teacher: the guidance and interval default to its eval-guidance.
  teacher.model.num_classes = 3;
  teacher.train.eval_guidance.weight = 1.5;
  teacher.train.eval_guidance.sigma_low = 0.2;
  const ddpm::Config g = ddpm::student_config(teacher, o);
  EXPECT_TRUE(g.distill.guidance_given);
  EXPECT_EQ(g.distill.guidance.weight, 1.5);
  EXPECT_EQ(g.distill.guidance.sigma_low, 0.2);
  EXPECT_EQ(g.train.eval_guidance.weight, 0.0) << "the student is guided already";
  EXPECT_FALSE(g.train.eval_guidance.limited());

  // Asking a distilled student for something else: a warning; for fewer steps: an error.
  ddpm::SamplerConfig asked = c.sample;
  EXPECT_EQ(ddpm::distilled_sampler_warning(c, asked, 0.0), "");
  asked.kind = ddpm::SamplerKind::DpmSolver2M;
  EXPECT_NE(ddpm::distilled_sampler_warning(c, asked, 0.0).find("distilled for ddim 2 steps"), std::string::npos);
  asked = c.sample;
  asked.steps = 4;
  EXPECT_NE(ddpm::distilled_sampler_warning(c, asked, 0.0), "");
  asked.steps = 1;
  EXPECT_EQ(ddpm::test::error_of([&] { ddpm::distilled_sampler_warning(c, asked, 0.0); }).rfind("--steps:", 0), 0u);
  EXPECT_EQ(ddpm::distilled_sampler_warning(teacher, asked, 0.0), "") << "not distilled: nothing to say";
}

// ---------------------------------------------------------------- ddpm-distill end to end

namespace {


// A tiny ε teacher (configs/tiny.toml, 3 steps) on `images` in `run_dir`.
void train_tiny_teacher(const std::string& images, const std::string& run_dir) {
  auto r = run_command(tool_path("ddpm-train") + " --config " + ddpm::test::source_dir() + "/configs/tiny.toml --data " +
                       images + " --run-dir " + run_dir + " --steps 3 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

}  // namespace

TEST(DistillCli, RoundTripWarningsAndBadInput) {
  const auto dir = ddpm::test::make_temp_dir("ddpm-distill-cli");
  const std::string images = ddpm::test::make_image_folder(dir + "/images", 8);
  const std::string teacher = dir + "/teacher", student = dir + "/student";
  train_tiny_teacher(images, teacher);
  const std::string distill = tool_path("ddpm-distill") + " --teacher " + teacher + " --threads 1 --batch-size 4 --log-every 1";
  auto r = run_command(distill + " --run-dir " + student + " --start-steps 8 --final-steps 2 --steps-per-round 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "the student predicts v")) << r.output;  // tiny.toml's teacher is epsilon
  const ddpm::CheckpointReader ckpt(student);
  EXPECT_EQ(ckpt.step(), 4);
  const ddpm::Config c = ckpt.config();
  EXPECT_EQ(c.distill.distilled_steps, 2);
  EXPECT_EQ(c.distill.distilled_rounds, 2);
  EXPECT_EQ(c.distill.teacher, teacher);
  EXPECT_EQ(c.sample.kind, ddpm::SamplerKind::Ddim);
  EXPECT_EQ(c.sample.steps, 2);
  EXPECT_EQ(c.train.prediction, Prediction::V);
  EXPECT_EQ(lines_of(student + "/metrics.jsonl").size(), 4u);

  // ddpm-sample with no flags: ddim at 2 steps, no warning; other samplers and steps: a warning.
  const std::string sample = tool_path("ddpm-sample") + " --checkpoint " + student + " --n 2 --threads 1 --out " + dir;
  r = run_command(sample + "/a.png");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "sampler ddim, 2 steps (trailing)")) << r.output;
  EXPECT_FALSE(has(r.output, "distilled for")) << r.output;
  r = run_command(sample + "/b.png --sampler dpm++2m");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "distilled for ddim 2 steps")) << r.output;
  r = run_command(sample + "/c.png --steps 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "distilled for ddim 2 steps")) << r.output;
  // Bad input: one line, exit 2.
  auto one_line_exit_2 = [](const ddpm::test::CommandResult& res, const std::string& names) {
    EXPECT_EQ(res.exit_code, 2) << res.output;
    EXPECT_TRUE(has(res.output, names)) << res.output;
    EXPECT_LE(std::count(res.output.begin(), res.output.end(), '\n'), 1) << res.output;
  };
  one_line_exit_2(run_command(sample + "/d.png --steps 1"), "--steps");
  one_line_exit_2(run_command(distill + " --run-dir " + dir + "/x --final-steps 3"), "final-steps");
  one_line_exit_2(run_command(distill + " --run-dir " + dir + "/x --no-such-option 1"), "--no-such-option");
  one_line_exit_2(run_command(tool_path("ddpm-distill") + " --run-dir " + dir + "/x"), "--teacher");
  one_line_exit_2(run_command(tool_path("ddpm-distill") + " --run-dir " + teacher + " --resume"), "not a distillation");
  one_line_exit_2(run_command(tool_path("ddpm-train") + " --run-dir " + student + " --resume"), "ddpm-distill");
  // A student of another shape: a teacher with 8 base channels.
  r = run_command(tool_path("ddpm-train") + " --config " + ddpm::test::source_dir() + "/configs/tiny.toml --data " + images +
                  " --run-dir " + dir + "/other --steps 1 --base-channels 8 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  one_line_exit_2(run_command(distill + " --run-dir " + dir + "/y --start-steps 4 --final-steps 2 --steps-per-round 1 "
                              "--student-init " + dir + "/other"),
                  "other");
  // A student distilled to 2 steps cannot teach from 8.
  one_line_exit_2(run_command(tool_path("ddpm-distill") + " --teacher " + student + " --run-dir " + dir +
                              "/z --start-steps 8 --final-steps 1 --threads 1"),
                  "start-steps");
  fs::remove_all(dir);
}

// A distillation stopped anywhere — in round 0 (its teacher from the teacher file) or after the
// boundary where the student became the teacher — continues exactly: the resumed steps log the
// same losses bit for bit and end on the same weights.
TEST(DistillCli, ResumeContinuesExactly) {
  const auto dir = ddpm::test::make_temp_dir("ddpm-distill-resume");
  const std::string images = ddpm::test::make_image_folder(dir + "/images", 8);
  const std::string teacher = dir + "/teacher", run = dir + "/run";
  train_tiny_teacher(images, teacher);
  auto r = run_command(tool_path("ddpm-distill") + " --teacher " + teacher + " --run-dir " + run +
                  " --start-steps 4 --final-steps 1 --steps-per-round 2 --batch-size 4 --threads 1 --log-every 1 "
                  "--save-every 1 --keep-last 0 --ema-decay 0.5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto metrics = lines_of(run + "/metrics.jsonl");
  ASSERT_EQ(metrics.size(), 4u);
  auto weights = [](const std::string& path) {
    const ddpm::CheckpointReader reader(path);
    ddpm::UNet net(reader.config().model);
    reader.load_ema(*net);
    return net->parameters();
  };
  const auto final_weights = weights(ddpm::checkpoint_path(run, 4));
  auto without_speed = [](const std::string& line) { return line.substr(0, line.find(",\"images_per_s\"")); };
  for (int64_t from : {3, 1}) {
    for (int64_t k = from + 1; k <= 4; ++k) fs::remove(ddpm::checkpoint_path(run, k));
    r = run_command(tool_path("ddpm-distill") + " --run-dir " + run + " --resume --threads 1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto again = lines_of(run + "/metrics.jsonl");
    ASSERT_EQ(again.size(), 4u);
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(without_speed(again[i]), without_speed(metrics[i])) << "from " << from;
    const auto w = weights(ddpm::checkpoint_path(run, 4));
    ASSERT_EQ(w.size(), final_weights.size());
    for (size_t i = 0; i < w.size(); ++i) EXPECT_TRUE(at::equal(w[i], final_weights[i])) << "from " << from;
  }
  fs::remove_all(dir);
}
