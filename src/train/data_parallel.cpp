#include "ddpm/train/data_parallel.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <stdexcept>

namespace ddpm {

DataParallel::DataParallel(dist::ProcessGroup& group) : group_(group) {}
DataParallel::~DataParallel() = default;

void DataParallel::configure(TrainerOptions& options) {
  options.rank = static_cast<int>(group_.rank());
  options.world_size = static_cast<int>(group_.world_size());
  if (group_.world_size() == 1) return;
  options.set_sync = [this](bool sync) {
    if (!reducer_) throw std::logic_error("DataParallel: attach() the trainer before fit()");
    reducer_->set_sync(sync);
  };
  options.reduce_gradients = [this](torch::nn::Module&) {
    if (!reducer_) throw std::logic_error("DataParallel: attach() the trainer before fit()");
    reducer_->finish();
  };
  options.all_reduce_sum = [this](at::Tensor& t) { group_.all_reduce_sum(t); };
  options.barrier = [this] { group_.barrier(); };
  options.reducer_stats = [this] { return stats(); };
}

void DataParallel::attach(Trainer& trainer) {
  if (group_.world_size() == 1) return;
  reducer_ = std::make_unique<dist::GradientReducer>(trainer.model()->parameters(), group_);
  reducer_->broadcast_parameters();
  // The EMA weights too (equal already when every rank built the model from the same seed or
  // resumed the same checkpoint; this makes it so whatever happened before).
  c10::NoGradGuard no_grad;
  for (auto& p : trainer.ema_model()->parameters()) {
    at::Tensor flat = p.detach().contiguous().cpu();
    group_.broadcast(flat, 0);
    p.copy_(flat.view_as(p));
  }
}

dist::ReducerStats DataParallel::stats() const { return reducer_ ? reducer_->stats() : dist::ReducerStats{}; }

int64_t DataParallel::bucket_count() const { return reducer_ ? reducer_->bucket_count() : 0; }

}  // namespace ddpm
