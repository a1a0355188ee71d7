// The trainer's evaluations (eval-every): eval-n samples of the EMA weights measured by the
// Evaluator that ddpm-eval uses, one line in metrics.jsonl and eval/* in TensorBoard.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "io/json.hpp"
#include "train/trainer_internal.hpp"

namespace ddpm {
namespace {

// As fmt writes it (the shortest text that reads back); null when not finite.
json::Value number(double x) {
  return std::isfinite(x) ? json::Value::number_literal(fmt::format("{}", x)) : json::Value();
}

// {"step", "fid"[, "kid", "kid_std", "precision", "recall"][, "eval_guidance"[, "eval_guidance_interval"]],
//  "eval_n", "eval_seconds", "eval_features"}
json::Value eval_line(int64_t step, const eval::EvalResult& r, const Config& config, double seconds) {
  json::Value line = json::Value::object();
  line.set("step", json::Value::integer(step));
  line.set("fid", number(*r.fid));
  if (r.kid && r.pr) {
    line.set("kid", number(r.kid->mean));
    line.set("kid_std", number(r.kid->std));
    line.set("precision", number(r.pr->precision));
    line.set("recall", number(r.pr->recall));
  }
  if (config.model.conditional()) {
    const Guidance& g = config.train.eval_guidance;
    line.set("eval_guidance", number(g.weight));
    if (g.limited())
      line.set("eval_guidance_interval", json::Value::array({number(g.sigma_low), number(g.sigma_high)}));
  }
  line.set("eval_n", json::Value::integer(config.train.eval_n));
  line.set("eval_seconds", json::Value::number_literal(fmt::format("{:.1f}", seconds)));
  line.set("eval_features", json::Value::string(r.features));
  return line;
}

EvalScores eval_scores(int64_t step, const eval::EvalResult& r) {
  EvalScores s;
  s.step = step;
  s.fid = r.fid;
  if (r.kid && r.pr) {
    s.kid = r.kid->mean;
    s.precision = r.pr->precision;
    s.recall = r.pr->recall;
  }
  return s;
}

}  // namespace

std::string Trainer::evaluate() {
  const auto& t = config_.train;
  if (!writes()) return "";
  if (t.eval_features.empty() || t.eval_ref.empty())
    throw std::invalid_argument("eval-every: needs --eval-features and --eval-ref");
  const auto start = std::chrono::steady_clock::now();
  if (!state_->evaluator) state_->evaluator = eval::Evaluator::for_run(config_, device_);
  c10::NoGradGuard no_grad;
  ema_model_->eval();
  const bool bf16 = t.bf16;
  const ConditionalDenoiser network = [this, bf16](const at::Tensor& x, const at::Tensor& ts, const at::Tensor& labels) {
    trainer_detail::Autocast autocast(bf16, device_);
    return ema_model_->forward(x, ts, labels).to(at::kFloat);
  };
  // A class-conditional model draws every class equally, as ddpm-eval does (eval-guidance).
  const auto samples =
      eval::sampled_image_set(network, *schedule_, config_.model, config_.sample, t.eval_n, t.eval_guidance);
  const eval::EvalResult r = state_->evaluator->compare(*samples);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string line = json::write(eval_line(step_, r, config_, seconds)) + "\n";
  if (state_->metrics.is_open()) {
    state_->metrics << line;
    state_->metrics.flush();
  }
  if (state_->tensorboard) state_->tensorboard->eval(eval_scores(step_, r));
  std::string summary = fmt::format("eval step {}: FID {:.4f}", step_, *r.fid);
  if (r.kid && r.pr)
    summary += fmt::format("  KID {:.5f}  precision {:.3f}  recall {:.3f}", r.kid->mean, r.pr->precision, r.pr->recall);
  event(summary + fmt::format(" ({} samples, {}, {:.0f} s)", t.eval_n, r.features, seconds));
  return line;
}

}  // namespace ddpm
