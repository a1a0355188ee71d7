#pragma once
// Data-parallel gradient reduction overlapped with backward (what DDP's Reducer does, written
// here because Debian's LibTorch headers lack what c10d::Reducer needs): the parameters are
// packed, in reverse order (the order backward produces their gradients), into flat buckets
// of ~25 MB (the first smaller, so communication starts early); an autograd hook per
// parameter counts the gradients of its bucket, and the moment a bucket is complete its
// all-reduce is launched while backward goes on. finish() waits for the buckets and writes
// the SUM over ranks into every .grad (losses are scaled by 1/global batch, so the sum is the
// gradient of the global mean whatever the world size).
#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "ddpm/dist/process_group.hpp"

namespace ddpm::dist {

/// Timing of the gradient all-reduces, for the log: how much of it backward hid.
struct ReducerStats {
  /// From the first bucket's launch to the end of the last all-reduce, summed over steps:
  /// the window in which gradients were on the wire.
  double window_seconds = 0;
  /// The part of that window finish() spent waiting after backward: not hidden.
  double wait_seconds = 0;
  /// Synced steps counted.
  int64_t steps = 0;
  /// Fraction of the all-reduce window hidden behind backward: 1 − wait / window.
  double hidden_fraction() const { return window_seconds > 0 ? 1.0 - wait_seconds / window_seconds : 0.0; }
};

/// Sums the gradients of all ranks in flat buckets (reverse parameter order, a small first
/// bucket), each all-reduce started from autograd hooks as soon as its bucket is complete, so
/// the communication overlaps backward.
class GradientReducer {
 public:
  /// `params` in registration order; every one must get a gradient in each synced backward.
  GradientReducer(std::vector<at::Tensor> params, ProcessGroup& group, int64_t bucket_bytes = 25 << 20,
                  int64_t first_bucket_bytes = 1 << 20);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  /// Whether the next backward reduces (false for all but the last micro-batch of a step).
  void set_sync(bool sync);
  /// After the synced backward: waits for every bucket and stores the sums in the .grads.
  /// Throws std::runtime_error if a rank was lost; std::logic_error if a parameter got no
  /// gradient (every rank must use every parameter).
  void finish();
  /// Copies rank 0's parameter values to every rank (initial weights).
  void broadcast_parameters();

  /// The number of buckets the parameters were packed into.
  int64_t bucket_count() const;
  /// Totals since construction.
  const ReducerStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm::dist
