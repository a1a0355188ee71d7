// DataLoader: a deterministic batch stream built by background threads.
//
// Batch k is a pure function of (seed, the start state, k): the scheduler hands out
// jobs in order under a lock (each job = the dataset indices and flip decisions of
// one batch, plus the state after it), workers build them in any order, and next()
// returns them strictly in job order. So the number of workers changes only speed.
#include <ATen/ATen.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "ddpm/data/dataset.hpp"
#include "util/splitmix.hpp"

namespace ddpm {
namespace {

// Uniform in [0, m) by rejection (std::uniform_int_distribution differs between
// standard libraries; this does not).
uint64_t bounded(std::mt19937_64& rng, uint64_t m) {
  const uint64_t threshold = (0 - m) % m;  // 2^64 mod m
  for (;;) {
    const uint64_t r = rng();
    if (r >= threshold) return r % m;
  }
}

}  // namespace

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  if (n < 0) throw std::invalid_argument("epoch_permutation: n must be >= 0");
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(mix64(mix64(seed ^ 0x5045524D55544531ull) + static_cast<uint64_t>(epoch)));
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[bounded(rng, static_cast<uint64_t>(i) + 1)]);
  return order;
}

bool flip_decision(uint64_t seed, int64_t epoch, int64_t position) {
  const uint64_t h = mix64(mix64(mix64(seed ^ 0x48464C4950000000ull) + static_cast<uint64_t>(epoch)) +
                         static_cast<uint64_t>(position));
  return (h >> 63) != 0;
}

struct DataLoader::Impl {
  struct Job {
    std::vector<int64_t> index;
    std::vector<bool> flip;
    LoaderState end;
  };
  struct Result {
    Batch batch;
    std::exception_ptr error;
    LoaderState end;
  };

  std::shared_ptr<Dataset> dataset;
  int64_t n, batch_size;
  int64_t slice_begin = 0, slice_count = 0;  // the part of each batch this loader builds
  uint64_t seed;
  bool hflip;
  int64_t workers, prefetch;

  mutable std::mutex mutex;
  std::condition_variable work_cv, ready_cv;
  bool stop = false;
  LoaderState returned;   // state of the next batch next() returns
  LoaderState job_state;  // state of the next batch to hand out
  int64_t next_job = 0, next_result = 0;
  std::map<int64_t, Result> results;
  std::map<int64_t, std::vector<int64_t>> permutations;  // recent epochs only
  std::vector<std::thread> threads;

  // Canonical form: a drop_last epoch tail too short for a batch means the next epoch.
  LoaderState normalize(LoaderState s) const {
    if (s.position >= n || (n >= batch_size && s.position + batch_size > n)) return {s.epoch + 1, 0};
    return s;
  }

  const std::vector<int64_t>& permutation(int64_t epoch) {
    auto it = permutations.find(epoch);
    if (it != permutations.end()) return it->second;
    while (permutations.size() >= 4) permutations.erase(permutations.begin());
    return permutations.emplace(epoch, epoch_permutation(n, seed, epoch)).first->second;
  }

  // Called with the lock held (or from the only thread).
  Job make_job() {
    Job job;
    job.index.reserve(slice_count);
    job.flip.reserve(slice_count);
    LoaderState s = job_state;
    for (int64_t k = 0; k < batch_size; ++k) {
      if (s.position >= n) s = {s.epoch + 1, 0};  // only when batches wrap (batch_size > n)
      if (k >= slice_begin && k < slice_begin + slice_count) {
        job.index.push_back(permutation(s.epoch)[s.position]);
        job.flip.push_back(hflip && flip_decision(seed, s.epoch, s.position));
      }
      ++s.position;
    }
    job.end = normalize(s);
    job_state = job.end;
    return job;
  }

  // Plain loops rather than ATen ops: a worker thread must not start ATen's
  // intra-op thread pool (that would oversubscribe the cores the training uses).
  Batch build(const Job& job) const {
    const int64_t c = dataset->channels(), h = dataset->height(), w = dataset->width();
    const auto b = static_cast<int64_t>(job.index.size());
    at::Tensor batch = at::empty({b, c, h, w}, at::TensorOptions().dtype(at::kFloat));
    at::Tensor indices = at::empty({b}, at::TensorOptions().dtype(at::kLong));
    std::copy(job.index.begin(), job.index.end(), indices.data_ptr<int64_t>());
    float* out = batch.data_ptr<float>();
    for (int64_t k = 0; k < b; ++k) {
      at::Tensor image = dataset->get(job.index[k]);
      if (image.dim() != 3 || image.size(0) != c || image.size(1) != h || image.size(2) != w ||
          image.scalar_type() != at::kByte)
        throw std::runtime_error("data loader: dataset image " + std::to_string(job.index[k]) +
                                 " is not uint8 with the dataset's shape");
      image = image.contiguous();
      const uint8_t* in = image.data_ptr<uint8_t>();
      for (int64_t row = 0; row < c * h; ++row, in += w, out += w)
        for (int64_t x = 0; x < w; ++x)
          out[x] = static_cast<float>(in[job.flip[k] ? w - 1 - x : x]) / 127.5f - 1.f;  // exact at 0 and 255
    }
    return {batch, indices};
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      work_cv.wait(lock, [&] { return stop || next_job - next_result < prefetch; });
      if (stop) return;
      const int64_t seq = next_job++;
      Job job;
      Result result;
      try {
        job = make_job();
        result.end = job.end;
      } catch (...) {
        result.error = std::current_exception();
      }
      lock.unlock();
      if (!result.error) {
        try {
          result.batch = build(job);
        } catch (...) {
          result.error = std::current_exception();
        }
      }
      lock.lock();
      results.emplace(seq, std::move(result));
      ready_cv.notify_all();
    }
  }

  void check(LoaderState state) const {
    if (state.epoch < 0 || state.position < 0 || state.position > n)
      throw std::invalid_argument("data loader: bad state (epoch " + std::to_string(state.epoch) + ", position " +
                                  std::to_string(state.position) + ") for " + std::to_string(n) + " images");
  }

  void start(LoaderState state) {
    check(state);
    returned = job_state = normalize(state);
    next_job = next_result = 0;
    results.clear();
    permutations.clear();
    stop = false;
    try {
      for (int64_t t = 0; t < workers; ++t) threads.emplace_back([this] { worker_loop(); });
    } catch (const std::system_error& e) {
      // Out of threads (ulimit, memory): join the started ones, or their destructors terminate the process.
      const size_t started = threads.size();
      shutdown();
      throw std::runtime_error("--workers: cannot start loader thread " + std::to_string(started + 1) + " of " +
                               std::to_string(workers) + " (" + e.what() + "); use fewer --workers");
    }
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    work_cv.notify_all();
    for (auto& t : threads) t.join();
    threads.clear();
  }

  Batch next() {
    if (workers == 0) {
      Job job = make_job();
      Batch batch = build(job);
      std::lock_guard<std::mutex> lock(mutex);
      returned = job.end;
      return batch;
    }
    std::unique_lock<std::mutex> lock(mutex);
    ready_cv.wait(lock, [&] { return results.count(next_result) != 0; });
    auto it = results.find(next_result);
    // A failed batch stays in place: every later call reports the same error.
    if (it->second.error) std::rethrow_exception(it->second.error);
    Batch batch = std::move(it->second.batch);
    returned = it->second.end;
    results.erase(it);
    ++next_result;
    lock.unlock();
    work_cv.notify_all();
    return batch;
  }
};

DataLoader::DataLoader(std::shared_ptr<Dataset> dataset, int64_t batch_size, uint64_t seed,
                       const DataConfig& config, LoaderState start, LoaderSlice slice)
    : impl_(std::make_unique<Impl>()) {
  if (!dataset) throw std::invalid_argument("data loader: no dataset");
  if (batch_size < 1) throw std::invalid_argument("--batch-size: must be >= 1, got " + std::to_string(batch_size));
  if (config.workers < 0 || config.workers > DataConfig::kMaxWorkers)
    throw std::invalid_argument("--workers: must be in [0, " + std::to_string(DataConfig::kMaxWorkers) + "], got " +
                                std::to_string(config.workers));
  if (config.prefetch < 1)
    throw std::invalid_argument("--prefetch: must be >= 1, got " + std::to_string(config.prefetch));
  if (dataset->size() < 1) throw std::invalid_argument("data loader: the dataset is empty");
  if (slice.count == 0) slice = {0, batch_size};
  if (slice.begin < 0 || slice.count < 1 || slice.begin + slice.count > batch_size)
    throw std::invalid_argument("data loader: slice [" + std::to_string(slice.begin) + ", " +
                                std::to_string(slice.begin + slice.count) + ") is not inside a batch of " +
                                std::to_string(batch_size));
  impl_->dataset = std::move(dataset);
  impl_->n = impl_->dataset->size();
  impl_->batch_size = batch_size;
  impl_->slice_begin = slice.begin;
  impl_->slice_count = slice.count;
  impl_->seed = seed;
  impl_->hflip = config.hflip;
  impl_->workers = config.workers;
  impl_->prefetch = config.prefetch;
  impl_->start(start);
}

DataLoader::~DataLoader() { impl_->shutdown(); }

at::Tensor DataLoader::next() { return impl_->next().images; }

Batch DataLoader::next_batch() { return impl_->next(); }

LoaderSlice DataLoader::slice() const { return {impl_->slice_begin, impl_->slice_count}; }

LoaderState DataLoader::state() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->returned;
}

void DataLoader::reset(LoaderState state) {
  impl_->check(state);
  impl_->shutdown();
  impl_->start(state);
}

int64_t DataLoader::batch_size() const { return impl_->batch_size; }

int64_t DataLoader::batches_per_epoch() const {
  return impl_->batch_size <= impl_->n ? impl_->n / impl_->batch_size : 0;
}

const Dataset& DataLoader::dataset() const { return *impl_->dataset; }

}  // namespace ddpm
