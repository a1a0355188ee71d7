#include "ddpm/dist/process_group.hpp"

#include <ATen/ATen.h>

#include <signal.h>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ddpm/util/errors.hpp"

#ifdef DDPM_WITH_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace ddpm::dist {

#ifdef DDPM_WITH_GLOO

namespace {

// Every rank bumps a counter in the store twice a second from its own connection, so that when a
// collective fails the survivors can say which rank went silent (Gloo's error names a socket).
class Heartbeat {
 public:
  Heartbeat(c10::intrusive_ptr<c10d::Store> store, int64_t rank, int64_t world, bool agent_store)
      : store_(std::move(store)), rank_(rank), world_(world), agent_store_(agent_store) {
    thread_ = std::thread([this] { run(); });
  }
  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(wake_mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  // " (rank 2 is gone: ...)" or "" when every rank is still beating.
  std::string who_is_lost() {
    std::vector<int64_t> before, after;
    if (!read(before)) return unreachable();
    std::this_thread::sleep_for(kSilence);
    if (!read(after)) return unreachable();
    std::string lost;
    for (int64_t r = 0; r < world_; ++r)
      if (r != rank_ && after[r] == before[r]) lost += (lost.empty() ? "" : ", ") + std::to_string(r);
    if (lost.empty()) return "";
    return " (lost: rank " + lost + ", no heartbeat for " + std::to_string(kSilence.count()) + " ms)";
  }

 private:
  static constexpr std::chrono::milliseconds kBeat{500}, kSilence{1500};
  static std::string key(int64_t r) { return "ddpm/heartbeat/" + std::to_string(r); }

  std::string unreachable() const {
    return agent_store_ ? " (the rendezvous store is unreachable)"
                        : " (lost: rank 0, whose rendezvous store no longer answers)";
  }
  bool read(std::vector<int64_t>& beats) {
    beats.assign(static_cast<size_t>(world_), 0);
    try {
      std::lock_guard<std::mutex> lock(store_mutex_);
      for (int64_t r = 0; r < world_; ++r)
        if (r != rank_) beats[static_cast<size_t>(r)] = store_->add(key(r), 0);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }
  void run() {
    std::unique_lock<std::mutex> lock(wake_mutex_);
    while (!stop_) {
      try {
        std::lock_guard<std::mutex> store_lock(store_mutex_);
        store_->add(key(rank_), 1);
      } catch (const std::exception&) {
        // The store is gone (rank 0 ended): nothing to report to.
      }
      wake_.wait_for(lock, kBeat, [this] { return stop_; });
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  int64_t rank_, world_;
  bool agent_store_;
  std::mutex store_mutex_, wake_mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

[[noreturn]] void lost(const std::string& what, const std::exception& e, Heartbeat* heartbeat) {
  const std::string who = heartbeat ? heartbeat->who_is_lost() : "";
  throw std::runtime_error("distributed " + what + " failed" +
                           (who.empty() ? " (a rank exited or the timeout passed)" : who) + ": " +
                           first_line(e.what()));
}

class GlooPending : public Pending {
 public:
  GlooPending(c10::intrusive_ptr<c10d::Work> work, std::shared_ptr<Heartbeat> heartbeat)
      : work_(std::move(work)), heartbeat_(std::move(heartbeat)) {}
  void wait() override {
    try {
      work_->wait();
    } catch (const std::exception& e) {
      lost("all-reduce", e, heartbeat_.get());
    }
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::shared_ptr<Heartbeat> heartbeat_;
};

// Gloo writes to its peers with writev(), which raises SIGPIPE once a peer's socket has been
// reset; SIGPIPE's default action ends the process without a word (seen in CI: a survivor died
// silently instead of naming the lost rank). Ignored, the write fails with EPIPE, Gloo throws, and
// lost() names the rank. Python does the same at start-up; a handler the program set is kept.
void ignore_sigpipe() {
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL &&
      !(current.sa_flags & SA_SIGINFO)) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGPIPE, &ignore, nullptr);
  }
}

bool loopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1"; }

}  // namespace

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  std::shared_ptr<Heartbeat> heartbeat;
  ~Impl() {
    heartbeat.reset();  // before the store it writes to
  }
};

ProcessGroup::ProcessGroup(const LaunchInfo& info, std::chrono::milliseconds timeout)
    : rank_(info.rank), world_size_(info.world_size) {
  if (world_size_ == 1) return;
  ignore_sigpipe();
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
    // The heartbeat's own client connection (a store client is not shared between threads).
    c10d::TCPStoreOptions beat_opts;
    beat_opts.port = opts.port;
    beat_opts.isServer = false;
    beat_opts.waitWorkers = false;
    beat_opts.timeout = std::chrono::milliseconds(5000);
    c10::intrusive_ptr<c10d::Store> beat_store = c10::make_intrusive<c10d::TCPStore>(info.master_addr, beat_opts);
    if (info.agent_store)
      beat_store =
          c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(info.restart_count), beat_store);
    impl_->heartbeat = std::make_shared<Heartbeat>(beat_store, info.rank, info.world_size, info.agent_store);
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
    return std::make_unique<GlooPending>(impl_->gloo->allreduce(tensors), impl_->heartbeat);
  } catch (const std::exception& e) {
    lost("all-reduce", e, impl_->heartbeat.get());
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
    lost("broadcast", e, impl_->heartbeat.get());
  }
}

void ProcessGroup::barrier() {
  if (!impl_) return;
  try {
    impl_->gloo->barrier()->wait();
  } catch (const std::exception& e) {
    lost("barrier", e, impl_->heartbeat.get());
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
