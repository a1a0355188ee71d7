#include "tools/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace ddpm::cli {

Progress::Progress(std::string label, int64_t total, int64_t start, int64_t images_per_step, int64_t log_every,
                   std::FILE* out, int tty)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      start_(start),
      images_per_step_(images_per_step),
      log_every_(std::max<int64_t>(log_every, 1)),
      out_(out),
      tty_(tty < 0 ? ::isatty(::fileno(out)) == 1 : tty != 0),
      last_step_(start),
      t0_(Clock::now()),
      last_draw_(t0_ - std::chrono::seconds(1)) {}

Progress::~Progress() { finish(); }

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{:02}:{:02}", s / 60, s % 60);
}

std::string Progress::status(int64_t step, const std::vector<std::pair<std::string, double>>& values) const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0_).count();
  const double done = static_cast<double>(step - start_);
  const double rate = elapsed > 0 && done > 0 ? done / elapsed : 0.0;
  std::string line = fmt::format("{}/{}  {:3.0f}%", step, total_, 100.0 * step / total_);
  for (const auto& [name, value] : values) line += fmt::format("  {} {:.4g}", name, value);
  line += rate >= 10 ? fmt::format("  {:.1f} it/s", rate)
                     : (rate > 0 ? fmt::format("  {:.2f} it/s", rate) : std::string("  -- it/s"));
  if (images_per_step_ > 0) line += fmt::format("  {:.1f} img/s", rate * images_per_step_);
  line += "  ETA " + format_duration(rate > 0 ? (total_ - step) / rate : NAN);
  return line;
}

void Progress::update(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  last_step_ = step;
  last_values_ = values;
  const bool last = step >= total_;
  if (tty_) {
    const auto now = Clock::now();
    if (!last && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(kWidth * std::min<double>(1.0, static_cast<double>(step) / total_));
    std::fprintf(out_, "\r\033[2K%s [%s%s] %s", label_.c_str(), std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), status(step, values).c_str());
    bar_drawn_ = true;
  } else {
    if (step % log_every_ != 0 && !last) return;
    std::fprintf(out_, "%s %s\n", label_.c_str(), status(step, values).c_str());
  }
  std::fflush(out_);
}

void Progress::message(const std::string& text) {
  if (tty_) std::fputs("\r\033[2K", out_);
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
  bar_drawn_ = false;
  last_draw_ = Clock::now() - std::chrono::seconds(1);  // redraw the bar at the next update
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_ && bar_drawn_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
}

}  // namespace ddpm::cli
