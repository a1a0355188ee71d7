#pragma once
// Data-parallel training: joins a Trainer to a dist::ProcessGroup. configure() fills the
// TrainerOptions hooks (gradient reduction overlapped with backward by a GradientReducer, the
// control all-reduce, barriers); attach() builds the reducer over the trainer's parameters and
// makes every rank start from rank 0's weights.
//
//   dist::ProcessGroup group(dist::launch_from_environment(), timeout);
//   DataParallel dp(group);
//   TrainerOptions options;  dp.configure(options);
//   Trainer trainer(config, dataset, device, options);  /* trainer.resume(...) */
//   dp.attach(trainer);  trainer.fit();
#include <memory>

#include "ddpm/dist/gradient_reducer.hpp"
#include "ddpm/dist/process_group.hpp"
#include "ddpm/train/trainer.hpp"

namespace ddpm {

/// Joins a Trainer to a dist::ProcessGroup (see the example above).
class DataParallel {
 public:
  /// `group` must outlive this object and the trainer.
  explicit DataParallel(dist::ProcessGroup& group);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  /// Sets rank, world_size and the collective hooks (world size 1: leaves the hooks empty).
  void configure(TrainerOptions& options);
  /// After the trainer is built (and resumed): the gradient buckets, and rank 0's model and EMA
  /// weights broadcast to every rank. Call before fit().
  void attach(Trainer& trainer);
  /// All-reduce timings so far (the hidden fraction: how much of it overlapped backward).
  dist::ReducerStats stats() const;
  /// The number of gradient buckets (0 before attach()).
  int64_t bucket_count() const;

 private:
  dist::ProcessGroup& group_;
  std::unique_ptr<dist::GradientReducer> reducer_;
};

}  // namespace ddpm
