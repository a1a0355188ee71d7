#pragma once
// The ranks of a data-parallel job, joined through PyTorch's own distributed engine (c10d):
// a TCPStore at MASTER_ADDR:MASTER_PORT for the rendezvous and Gloo for the collectives on
// CPU tensors. No c10d type appears here, so users of the header need no c10d/Gloo headers.
#include <ATen/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>

#include "ddpm/dist/launch.hpp"

namespace ddpm::dist {

/// A collective in flight (e.g. a gradient bucket's all-reduce launched during backward).
class Pending {
 public:
  virtual ~Pending() = default;
  /// Blocks until done; throws std::runtime_error if a rank was lost or the timeout passed.
  virtual void wait() = 0;
};

/// The ranks of a data-parallel job, joined through c10d: a TCPStore rendezvous and Gloo
/// collectives on CPU tensors, with a heartbeat per rank so a lost rank is named.
class ProcessGroup {
 public:
  /// World size 1: no sockets; every collective is the identity.
  ProcessGroup();
  /// Joins the group `info` describes. Every rank must construct it; each waits at most
  /// `timeout` for the others, in the rendezvous and in every later collective.
  /// Throws std::runtime_error (one line) when the group cannot be formed. Sets SIGPIPE to
  /// ignored if it is at its default, so that a peer that dies becomes an error naming it
  /// rather than a silent end of this process (as Python does for torch.distributed).
  ProcessGroup(const LaunchInfo& info, std::chrono::milliseconds timeout);
  ~ProcessGroup();
  /// Movable, not copyable.
  ///@{
  ProcessGroup(ProcessGroup&&) noexcept;
  ProcessGroup& operator=(ProcessGroup&&) noexcept;
  ///@}

  /// This process's rank.
  int64_t rank() const { return rank_; }
  /// The number of ranks.
  int64_t world_size() const { return world_size_; }

  /// Sum over the ranks, in place. Throws std::runtime_error when a rank is lost.
  void all_reduce_sum(at::Tensor& tensor);
  /// The same, started now and finished by Pending::wait().
  std::unique_ptr<Pending> all_reduce_sum_async(at::Tensor& tensor);
  /// Copies `root`'s tensor into every rank's, in place.
  void broadcast(at::Tensor& tensor, int64_t root = 0);
  /// Returns when every rank has reached it. Throws std::runtime_error when a rank is lost.
  void barrier();
  /// True on every rank when `flag` is true on any of them (stop requests, non-finite
  /// losses, end of training: decisions no rank may take alone, or it would hang the others).
  bool any(bool flag);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t rank_ = 0;
  int64_t world_size_ = 1;
};

/// Whether this build can form groups of more than one process (c10d with Gloo).
bool gloo_available();

}  // namespace ddpm::dist
