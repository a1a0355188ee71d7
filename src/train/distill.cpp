#include "ddpm/train/distill.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include "ddpm/util/errors.hpp"

namespace ddpm {
namespace {

// The teacher's estimate at t, as SamplerRun::estimate makes it: x̂₀ (clipped when asked, ε̂
// then recomputed from it) and ε̂.
struct Estimate {
  at::Tensor x0, eps;
};
Estimate estimate(const Denoiser& teacher, Prediction p, bool clip, const at::Tensor& z, const at::Tensor& t,
                  const at::Tensor& ab) {
  at::Tensor out = teacher(z, t).to(z.options());
  Estimate e;
  e.x0 = predict_x0(p, z, out, ab);
  if (clip) {
    e.x0 = e.x0.clamp(-1.0, 1.0);
    e.eps = eps_from_x0(z, e.x0, ab);
  } else {
    e.eps = predict_eps(p, z, out, ab);
  }
  return e;
}

// One DDIM (η = 0) step to ᾱ_prev: √ᾱ_prev x̂₀ + √(1 − ᾱ_prev) ε̂ (Song et al. 2021 eq. 12).
at::Tensor ddim_step(const Estimate& e, const at::Tensor& ab_prev) {
  return e.x0 * ab_prev.sqrt().to(e.x0.scalar_type()) + e.eps * (1.0 - ab_prev).sqrt().to(e.x0.scalar_type());
}

std::vector<at::Tensor> weights_of(const torch::nn::Module& m) {
  std::vector<at::Tensor> out = m.parameters();
  for (const at::Tensor& b : m.buffers()) out.push_back(b);
  return out;
}

void copy_weights(const torch::nn::Module& from, torch::nn::Module& to) {
  c10::NoGradGuard no_grad;
  const auto src = weights_of(from);
  auto dst = weights_of(to);
  if (src.size() != dst.size()) throw std::invalid_argument("distillation: the teacher and student differ in shape");
  for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
}

}  // namespace

DistillStep distill_steps(const at::Tensor& drawn, int64_t T, int64_t N) {
  if (N < 1 || 2 * N > T) bad_input("start-steps", fmt::format("the teacher's steps must be in [2, T = {}]", T));
  // The teacher's 2N-step trailing grid, ascending, with −1 (x₀) in front: grid[2i] is the
  // student's point i (of N), grid[2i − 1] the teacher's midpoint, grid[2i − 2] the next point.
  std::vector<int64_t> g{-1};
  for (int64_t t : timestep_subset(T, 2 * N, Spacing::Trailing)) g.push_back(t);
  const at::Tensor grid = at::tensor(g, at::kLong).to(drawn.device());
  const at::Tensor i = at::div(drawn.to(at::kLong) * N, T, "floor") + 1;  // 1..N
  return {grid.index_select(0, 2 * i), grid.index_select(0, 2 * i - 1), grid.index_select(0, 2 * i - 2)};
}

at::Tensor alpha_bar_or_one(const NoiseSchedule& s, const at::Tensor& t, c10::Device device) {
  const at::Tensor ab = s.alpha_bar64.to(at::kDouble);
  const at::Tensor table = at::cat({at::ones({1}, ab.options()), ab});
  return table.index_select(0, (t.to(ab.device()) + 1)).reshape({-1, 1, 1, 1}).to(device);
}

DistillTarget distillation_target(const Denoiser& teacher, Prediction p, bool clip, const NoiseSchedule& s,
                                  const at::Tensor& z, const DistillStep& step) {
  c10::NoGradGuard no_grad;
  const auto dev = z.device();
  const at::Tensor ab = alpha_bar_or_one(s, step.t, dev), ab_mid = alpha_bar_or_one(s, step.t_mid, dev),
                   ab_lo = alpha_bar_or_one(s, step.t_lo, dev);
  const at::Tensor z_mid = ddim_step(estimate(teacher, p, clip, z, step.t, ab), ab_mid);
  const at::Tensor z_lo = ddim_step(estimate(teacher, p, clip, z_mid, step.t_mid, ab_mid), ab_lo);
  // x̃ = (z_lo − r z) / (α_lo − r α_t), r = σ_lo/σ_t; the denominator is > 0 (σ_lo < σ_t, α_lo > α_t).
  const at::Tensor r = ((1.0 - ab_lo) / (1.0 - ab)).sqrt();
  const at::Tensor denom = ab_lo.sqrt() - r * ab.sqrt();
  const auto type = z.scalar_type();
  return {z_lo * (1.0 / denom).to(type) - z * (r / denom).to(type), z_lo};
}

at::Tensor truncated_snr_weight(const at::Tensor& alpha_bar) {
  const at::Tensor ab = alpha_bar.to(at::kDouble);
  return at::clamp_min(ab / (1.0 - ab), 1.0);
}

Config student_config(const Config& teacher, const Config& options) {
  const DistillConfig& d = options.distill;
  if (!d.active()) bad_input("--teacher", "no teacher checkpoint given");
  d.validate();
  const int64_t T = teacher.schedule.timesteps;
  if (d.start_steps > T)
    bad_input("start-steps", fmt::format("{} is more than the teacher's T = {} timesteps", d.start_steps, T));
  if (teacher.distill.distilled_steps > 0 && d.start_steps > teacher.distill.distilled_steps)
    bad_input("start-steps", fmt::format("{}: the teacher is a student distilled for {} steps; start from at most "
                                         "that many (--start-steps {})",
                                         d.start_steps, teacher.distill.distilled_steps,
                                         teacher.distill.distilled_steps));
  if (teacher.model.learned_variance)
    bad_input("--teacher", "a learned-variance teacher cannot be distilled (its student would need the variance "
                           "output trained too)");
  Config c = teacher;
  c.train = options.train;
  c.train.prediction = teacher.train.prediction == Prediction::Epsilon ? Prediction::V : teacher.train.prediction;
  // The student is guided already: its evaluations sample it plainly.
  c.train.eval_guidance = Guidance{};
  if (!options.data.source.empty()) c.data = options.data;
  c.distill = d;
  if (!d.guidance_given) {
    c.distill.guidance = teacher.train.eval_guidance;
    if (!teacher.model.conditional()) c.distill.guidance.weight = 0.0;
    c.distill.guidance_given = true;
  } else if (d.guidance.weight > 0.0 && !teacher.model.conditional()) {
    bad_input("guidance", "the teacher is not class-conditional");
  } else if (d.guidance.weight > 0.0 && teacher.distill.distilled_steps > 0 && teacher.distill.guidance.weight > 0.0) {
    bad_input("guidance", fmt::format("the teacher is a student that learned guidance w = {} already; guidance {} "
                                      "would guide it again (--guidance 0)",
                                      teacher.distill.guidance.weight, d.guidance.weight));
  }
  c.train.steps = d.rounds() * d.steps_per_round;
  record_distillation(c, 0);
  return c;
}

void record_distillation(Config& config, int64_t step) {
  DistillConfig& d = config.distill;
  const int64_t R = d.rounds();
  const int64_t done = std::min(step / d.steps_per_round, R);
  d.distilled_rounds = done;
  // During round r the student learns start >> (r + 1) steps. At a round's end, before the next
  // round has trained a step, the weights are that round's student: start >> done steps.
  const bool at_round_end = done > 0 && step == done * d.steps_per_round;
  d.distilled_steps = d.start_steps >> (at_round_end ? done : std::min(done + 1, R));
  SamplerConfig& s = config.sample;
  s.kind = SamplerKind::Ddim;
  s.steps = d.distilled_steps;
  s.spacing = Spacing::Trailing;
  s.eta = 0.0;
  // The student's x̂₀ at intermediate steps is the one that lands its DDIM step on the teacher's
  // two: it may leave [−1, 1] legitimately, so it is not clipped.
  s.clip_x0 = false;
  s.dynamic_threshold = false;
  s.corrector = false;
}

std::string distilled_sampler_warning(const Config& config, const SamplerConfig& asked, double guidance) {
  const DistillConfig& d = config.distill;
  if (d.distilled_steps <= 0) return "";
  const int64_t steps = asked.resolved_steps(config.schedule.timesteps);
  if (steps < d.distilled_steps)
    bad_input("--steps", fmt::format("{}: this student was distilled for {} DDIM steps; it cannot take fewer "
                                     "(distil it further with ddpm-distill --teacher)",
                                     steps, d.distilled_steps));
  std::string w;
  if (asked.kind != SamplerKind::Ddim || steps != d.distilled_steps || asked.spacing != Spacing::Trailing ||
      asked.eta != 0.0)
    w = fmt::format("this student was distilled for ddim {} steps (trailing, eta 0); {} {} steps ({}{}) is not what "
                    "it was trained for",
                    d.distilled_steps, to_string(asked.kind), steps, to_string(asked.spacing),
                    asked.kind == SamplerKind::Ddim ? fmt::format(", eta {}", asked.eta) : std::string());
  if (guidance > 0.0 && d.guidance.weight > 0.0)
    w += fmt::format("{}it learned its teacher guided with w = {}; --guidance {} guides it again", w.empty() ? "" : "; ",
                     d.guidance.weight, guidance);
  return w;
}

DistillObjective::DistillObjective(const Config& student, const UNet& teacher, const Config& teacher_config,
                                   c10::Device device)
    : d_(student.distill),
      student_prediction_(student.train.prediction),
      teacher_prediction_(teacher_config.train.prediction),
      clip_(teacher_config.sample.clip_x0),
      channels_(teacher_config.model.image_channels),
      schedule_(student.schedule, device) {
  if (student_prediction_ == Prediction::Epsilon)
    bad_input("prediction", "a distilled student predicts x0 or v (epsilon gives no x0 where alpha_bar ~ 0)");
  guidance_ = d_.guidance;
  guidance_.validate();
  teacher_ = UNet(student.model);
  teacher_->to(device);
  if (!teacher.is_empty()) copy_weights(*teacher, *teacher_);
  teacher_->eval();
  for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
}

Denoiser DistillObjective::teacher(const at::Tensor& labels) const {
  const int64_t C = channels_;
  const std::shared_ptr<UNetImpl> net = teacher_.ptr();
  const ConditionalDenoiser model = [net, C](const at::Tensor& x, const at::Tensor& t, const at::Tensor& c) {
    at::Tensor out = net->forward(x, t, c).to(at::kFloat);
    return out.size(1) == C ? out : out.narrow(1, 0, C);
  };
  if (!labels.defined()) return [model](const at::Tensor& x, const at::Tensor& t) { return model(x, t, {}); };
  return guided(model, labels, guidance_, schedule_);
}

void DistillObjective::at_step(int64_t step, const UNet& ema_model, Config& config) {
  const int64_t round = std::min(step / d_.steps_per_round, d_.rounds() - 1);
  if (round != round_) {
    // Algorithm 2: the student of the round just ended teaches the next one.
    copy_weights(*ema_model, *teacher_);
    teacher_prediction_ = student_prediction_;
    clip_ = false;
    round_ = round;
  }
  record_distillation(config, step);
}

at::Tensor DistillObjective::loss(const ObjectiveBatch& b, const ModelForward& model) {
  const int64_t T = schedule_.num_timesteps();
  const DistillStep step = distill_steps(b.timesteps, T, student_steps());
  const at::Tensor ab = alpha_bar_or_one(schedule_, step.t, b.x0.device());
  const auto type = b.x0.scalar_type();
  const at::Tensor z = b.x0 * ab.sqrt().to(type) + b.noise * (1.0 - ab).sqrt().to(type);  // q(z_t | x) (eq. 4)
  const at::Tensor target = distillation_target(teacher(b.labels), teacher_prediction_, clip_, schedule_, z, step).x0;
  const at::Tensor x0 = predict_x0(student_prediction_, z, model(z, step.t, b.labels), ab);
  const int64_t B = b.x0.size(0);
  return truncated_snr_weight(ab).to(at::kFloat).reshape({B}) * (x0 - target).pow(2).mean({1, 2, 3});
}

std::map<std::string, at::Tensor> DistillObjective::state() const {
  std::map<std::string, at::Tensor> s;
  s["round"] = at::scalar_tensor(round_, at::kLong);
  s["teacher_prediction"] = at::scalar_tensor(static_cast<int64_t>(teacher_prediction_), at::kLong);
  s["teacher_clip"] = at::scalar_tensor(clip_ ? 1 : 0, at::kLong);
  const auto w = weights_of(*teacher_);
  for (size_t i = 0; i < w.size(); ++i) s["teacher_" + std::to_string(i)] = w[i].detach();
  return s;
}

void DistillObjective::load_state(const std::function<at::Tensor(const std::string&)>& read) {
  const at::Tensor round = read("round");
  if (!round.defined())
    bad_input("--resume", "the checkpoint holds no distillation state (it is not a ddpm-distill checkpoint)");
  c10::NoGradGuard no_grad;
  auto w = weights_of(*teacher_);
  for (size_t i = 0; i < w.size(); ++i) {
    const at::Tensor saved = read("teacher_" + std::to_string(i));
    if (!saved.defined() || saved.sizes() != w[i].sizes())
      bad_input("--resume", "the checkpoint's teacher weights do not fit the model");
    w[i].copy_(saved);
  }
  round_ = round.item<int64_t>();
  const at::Tensor p = read("teacher_prediction"), clip = read("teacher_clip");
  if (!p.defined() || !clip.defined()) bad_input("--resume", "the checkpoint's distillation state is incomplete");
  const int64_t pv = p.item<int64_t>();
  if (pv < 0 || pv > static_cast<int64_t>(Prediction::V)) bad_input("--resume", "the checkpoint's teacher prediction is unknown");
  teacher_prediction_ = static_cast<Prediction>(pv);
  clip_ = clip.item<int64_t>() != 0;
}

}  // namespace ddpm
