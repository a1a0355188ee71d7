#include "ddpm/dist/process_group.hpp"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include "ddpm/util/errors.hpp"

#ifdef DDPM_WITH_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace ddpm::dist {

#ifdef DDPM_WITH_GLOO

namespace {

[[noreturn]] void lost(const std::string& what, const std::exception& e) {
  throw std::runtime_error("distributed " + what + " failed (a rank exited or the timeout passed): " +
                           first_line(e.what()));
}

class GlooPending : public Pending {
 public:
  explicit GlooPending(c10::intrusive_ptr<c10d::Work> work) : work_(std::move(work)) {}
  void wait() override {
    try {
      work_->wait();
    } catch (const std::exception& e) {
      lost("all-reduce", e);
    }
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
};

bool loopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1"; }

}  // namespace

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
};

ProcessGroup::ProcessGroup(const LaunchInfo& info, std::chrono::milliseconds timeout)
    : rank_(info.rank), world_size_(info.world_size) {
  if (world_size_ == 1) return;
  impl_ = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<uint16_t>(info.master_port);
    // Under torchrun's elastic agent the agent serves the store and every rank is a client;
    // otherwise rank 0 serves it.
    opts.isServer = info.rank == 0 && !info.agent_store;
    opts.numWorkers = static_cast<size_t>(info.world_size);
    opts.waitWorkers = !info.agent_store;
    opts.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(info.master_addr, opts);
    // Each elastic restart gets fresh keys, as torch.distributed's env:// rendezvous does.
    if (info.agent_store)
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(info.restart_count), store);
    impl_->store = store;
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (loopback(info.master_addr))
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, static_cast<int>(info.rank),
                                                               static_cast<int>(info.world_size), options);
  } catch (const std::exception& e) {
    throw std::runtime_error("distributed: cannot join the group of " + std::to_string(info.world_size) +
                             " ranks at " + info.master_addr + ":" + std::to_string(info.master_port) + " as rank " +
                             std::to_string(info.rank) + ": " + first_line(e.what()));
  }
}

void ProcessGroup::all_reduce_sum(at::Tensor& tensor) { all_reduce_sum_async(tensor)->wait(); }

std::unique_ptr<Pending> ProcessGroup::all_reduce_sum_async(at::Tensor& tensor) {
  struct Done : Pending {
    void wait() override {}
  };
  if (!impl_) return std::make_unique<Done>();
  std::vector<at::Tensor> tensors{tensor};
  try {
    return std::make_unique<GlooPending>(impl_->gloo->allreduce(tensors));
  } catch (const std::exception& e) {
    lost("all-reduce", e);
  }
}

void ProcessGroup::broadcast(at::Tensor& tensor, int64_t root) {
  if (!impl_) return;
  std::vector<at::Tensor> tensors{tensor};
  c10d::BroadcastOptions opts;
  opts.rootRank = root;
  try {
    impl_->gloo->broadcast(tensors, opts)->wait();
  } catch (const std::exception& e) {
    lost("broadcast", e);
  }
}

void ProcessGroup::barrier() {
  if (!impl_) return;
  try {
    impl_->gloo->barrier()->wait();
  } catch (const std::exception& e) {
    lost("barrier", e);
  }
}

bool gloo_available() { return true; }

#else  // no Gloo in this build: world size 1 only

struct ProcessGroup::Impl {};

ProcessGroup::ProcessGroup(const LaunchInfo& info, std::chrono::milliseconds)
    : rank_(info.rank), world_size_(info.world_size) {
  if (world_size_ > 1)
    throw std::runtime_error("distributed: this libddpm was built without c10d/Gloo; cannot join " +
                             std::to_string(world_size_) + " ranks");
}
void ProcessGroup::all_reduce_sum(at::Tensor&) {}
std::unique_ptr<Pending> ProcessGroup::all_reduce_sum_async(at::Tensor&) {
  struct Done : Pending {
    void wait() override {}
  };
  return std::make_unique<Done>();
}
void ProcessGroup::broadcast(at::Tensor&, int64_t) {}
void ProcessGroup::barrier() {}
bool gloo_available() { return false; }

#endif

ProcessGroup::ProcessGroup() = default;
ProcessGroup::~ProcessGroup() = default;
ProcessGroup::ProcessGroup(ProcessGroup&&) noexcept = default;
ProcessGroup& ProcessGroup::operator=(ProcessGroup&&) noexcept = default;

bool ProcessGroup::any(bool flag) {
  if (world_size_ == 1) return flag;
  at::Tensor t = at::full({1}, flag ? 1.0f : 0.0f);
  all_reduce_sum(t);
  return t.item<float>() > 0.0f;
}

}  // namespace ddpm::dist
