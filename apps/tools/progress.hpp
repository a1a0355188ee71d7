#pragma once
// Progress reporting for long loops (training steps, sampling steps).
// On a terminal: one bar redrawn in place, at most ~10 times a second:
//   train  [#########.........]  4200/10000  42%  loss 0.0312  5.1 it/s  326 img/s  ETA 18:57
// Otherwise (a log file, a pipe, CI): a plain line every `log_every` steps and at the end.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace ddpm::cli {

class Progress {
 public:
  /// `total` steps, starting after `start` steps already done (a resumed run).
  /// `images_per_step` > 0 adds images/s. `tty` < 0: detect from `out`.
  Progress(std::string label, int64_t total, int64_t start = 0, int64_t images_per_step = 0,
           int64_t log_every = 100, std::FILE* out = stdout, int tty = -1);
  ~Progress();

  /// Reports that `step` (1-based, ≤ total) is done, with named values shown as "name value".
  void update(int64_t step, const std::vector<std::pair<std::string, double>>& values = {});
  /// Prints a line of its own above the bar (clears the bar's line first on a terminal).
  void message(const std::string& text);
  /// Ends the bar (newline on a terminal). Called by the destructor if needed.
  void finish();

  bool is_tty() const { return tty_; }
  /// "1:02:03" / "02:03".
  static std::string format_duration(double seconds);
  /// The text of one status line (without bar or carriage return), for tests and the log.
  std::string status(int64_t step, const std::vector<std::pair<std::string, double>>& values) const;

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  int64_t total_, start_, images_per_step_, log_every_;
  std::FILE* out_;
  bool tty_;
  bool finished_ = false;
  bool bar_drawn_ = false;  // the terminal's current line holds the bar
  int64_t last_step_ = 0;
  Clock::time_point t0_, last_draw_;
  std::vector<std::pair<std::string, double>> last_values_;
};

}  // namespace ddpm::cli
