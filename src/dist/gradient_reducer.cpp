#include "ddpm/dist/gradient_reducer.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>

namespace ddpm::dist {
namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

struct GradientReducer::Impl {
  struct Bucket {
    std::vector<size_t> members;  // indices into params
    at::Tensor flat;              // float32, the members' gradients back to back
    int64_t ready = 0;
    std::unique_ptr<Pending> pending;
  };
  std::vector<at::Tensor> params;
  std::vector<size_t> bucket_of, offset_of;
  std::vector<bool> seen;
  std::vector<Bucket> buckets;
  ProcessGroup& group;
  bool sync = true;
  bool launched_any = false;
  Clock::time_point first_launch;
  ReducerStats stats;
  std::mutex mutex;  // autograd may run hooks on its worker threads

  Impl(std::vector<at::Tensor> p, ProcessGroup& g) : params(std::move(p)), group(g) {}

  void on_grad(size_t i, const at::Tensor& grad) {
    if (!sync || group.world_size() == 1) return;
    std::lock_guard<std::mutex> lock(mutex);
    if (seen[i]) throw std::logic_error("gradient reducer: parameter " + std::to_string(i) + " got two gradients in one backward");
    seen[i] = true;
    Bucket& b = buckets[bucket_of[i]];
    // The hook runs before autograd adds `grad` into .grad: the value to reduce is the
    // accumulated gradient of the earlier micro-batches plus this one.
    const at::Tensor& param = params[i];
    at::Tensor slot = b.flat.narrow(0, static_cast<int64_t>(offset_of[i]), param.numel());
    at::NoGradGuard no_grad;
    if (param.grad().defined())
      slot.copy_((param.grad() + grad).reshape({-1}));
    else
      slot.copy_(grad.reshape({-1}));
    if (++b.ready == static_cast<int64_t>(b.members.size())) {
      if (!launched_any) first_launch = Clock::now();
      launched_any = true;
      b.pending = group.all_reduce_sum_async(b.flat);
    }
  }
};

GradientReducer::GradientReducer(std::vector<at::Tensor> params, ProcessGroup& group, int64_t bucket_bytes,
                                 int64_t first_bucket_bytes)
    : impl_(std::make_unique<Impl>(std::move(params), group)) {
  Impl& m = *impl_;
  const size_t n = m.params.size();
  m.bucket_of.assign(n, 0);
  m.offset_of.assign(n, 0);
  m.seen.assign(n, false);
  // Reverse registration order ≈ the order backward finishes the gradients.
  int64_t limit = first_bucket_bytes, bytes = 0;
  for (size_t r = 0; r < n; ++r) {
    const size_t i = n - 1 - r;
    if (m.buckets.empty() || (bytes >= limit && !m.buckets.back().members.empty())) {
      if (!m.buckets.empty()) limit = bucket_bytes;
      m.buckets.emplace_back();
      bytes = 0;
    }
    Impl::Bucket& b = m.buckets.back();
    m.bucket_of[i] = m.buckets.size() - 1;
    m.offset_of[i] = static_cast<size_t>(bytes / 4);
    b.members.push_back(i);
    bytes += m.params[i].numel() * 4;
  }
  for (auto& b : m.buckets) {
    int64_t numel = 0;
    for (size_t i : b.members) numel += m.params[i].numel();
    b.flat = at::zeros({numel}, m.params.empty() ? at::TensorOptions() : m.params[0].options().dtype(at::kFloat));
  }
  for (size_t i = 0; i < n; ++i) {
    Impl* impl = impl_.get();
    m.params[i].register_hook([impl, i](const at::Tensor& grad) { impl->on_grad(i, grad); });
  }
}

GradientReducer::~GradientReducer() = default;

void GradientReducer::set_sync(bool sync) { impl_->sync = sync; }

void GradientReducer::finish() {
  Impl& m = *impl_;
  if (!m.sync || m.group.world_size() == 1) return;
  for (size_t i = 0; i < m.params.size(); ++i)
    if (!m.seen[i])
      throw std::logic_error("gradient reducer: parameter " + std::to_string(i) +
                             " got no gradient in this backward (every parameter must be used on every rank)");
  const auto wait_start = Clock::now();
  for (auto& b : m.buckets) b.pending->wait();
  m.stats.wait_seconds += seconds_since(wait_start);
  m.stats.window_seconds += seconds_since(m.first_launch);
  m.stats.steps += 1;
  m.launched_any = false;
  at::NoGradGuard no_grad;
  for (auto& b : m.buckets) {
    for (size_t i : b.members) {
      at::Tensor& p = m.params[i];
      const at::Tensor reduced = b.flat.narrow(0, static_cast<int64_t>(m.offset_of[i]), p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(reduced);
      else
        p.mutable_grad() = reduced.clone();
    }
    b.ready = 0;
    b.pending.reset();
  }
  std::fill(m.seen.begin(), m.seen.end(), false);
}

void GradientReducer::broadcast_parameters() {
  at::NoGradGuard no_grad;
  for (auto& p : impl_->params) {
    at::Tensor data = p.detach();
    impl_->group.broadcast(data, 0);
  }
}

int64_t GradientReducer::bucket_count() const { return static_cast<int64_t>(impl_->buckets.size()); }
const ReducerStats& GradientReducer::stats() const { return impl_->stats; }

}  // namespace ddpm::dist
