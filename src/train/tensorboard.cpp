#include "ddpm/train/tensorboard.hpp"

#include <sstream>
#include <vector>

namespace ddpm {

TensorBoardLog::TensorBoardLog(const std::string& dir) : writer_(dir) {}

void TensorBoardLog::start(int64_t step) { writer_.session_start(step + 1); }

void TensorBoardLog::config(int64_t step, const std::string& config_toml) {
  // Indented four spaces: a Markdown code block, so the TOML shows as written.
  std::string markdown;
  std::istringstream in(config_toml);
  for (std::string line; std::getline(in, line);) markdown += "    " + line + "\n";
  writer_.text(step, "config", markdown);
}

void TensorBoardLog::train(const TrainingScalars& s) {
  std::vector<io::ScalarValue> v = {{"train/loss", s.loss},
                                    {"train/lr", s.lr},
                                    {"train/grad_norm", s.grad_norm},
                                    {"train/images_per_s", s.images_per_s},
                                    {"train/step_time", s.step_time}};
  if (s.allreduce_hidden) v.push_back({"train/allreduce_hidden", *s.allreduce_hidden});
  writer_.scalars(s.step, v);
}

void TensorBoardLog::eval(const EvalScores& s) {
  std::vector<io::ScalarValue> v;
  if (s.fid) v.push_back({"eval/fid", *s.fid});
  if (s.kid) v.push_back({"eval/kid", *s.kid});
  if (s.precision) v.push_back({"eval/precision", *s.precision});
  if (s.recall) v.push_back({"eval/recall", *s.recall});
  if (!v.empty()) writer_.scalars(s.step, v);
}

void TensorBoardLog::samples(int64_t step, const Image& grid) {
  writer_.image(step, {"samples", encode_png(grid, "samples at step " + std::to_string(step)), grid.height, grid.width,
                       grid.channels});
}

}  // namespace ddpm
