#include "tools/local_slices.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "tools/local_launch.hpp"

namespace ddpm::cli {
namespace {

namespace fs = std::filesystem;

// A slice file: this header (native byte order: the file never leaves this machine), then
// `count` images of `bytes_per_image` bytes.
constexpr char kMagic[8] = {'D', 'D', 'P', 'M', 'S', 'L', 'C', '1'};
struct Header {
  char magic[8];
  uint64_t count;
  uint64_t bytes_per_image;
};
constexpr int64_t kHeaderBytes = sizeof(Header);

int parse_int(const std::string& s, const char* what) {
  size_t used = 0;
  int v = -1;
  try {
    v = std::stoi(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size())
    throw std::invalid_argument(std::string("DDPM_SLICE: ") + what + " is not a number (got '" + s + "')");
  return v;
}

}  // namespace

Slice slice_of(int rank, int ranks, int64_t n) {
  const int64_t first = rank * n / ranks, end = (rank + 1) * n / ranks;
  return {first, end - first};
}

std::optional<SliceTask> slice_task_from_environment() {
  const char* slice = std::getenv("DDPM_SLICE");
  if (!slice) return std::nullopt;
  const std::string s = slice;
  const size_t slash = s.find('/');
  if (slash == std::string::npos) throw std::invalid_argument("DDPM_SLICE: expected RANK/RANKS (got '" + s + "')");
  SliceTask task;
  task.rank = parse_int(s.substr(0, slash), "RANK");
  task.ranks = parse_int(s.substr(slash + 1), "RANKS");
  if (task.ranks < 1 || task.ranks > kMaxLocalRanks || task.rank < 0 || task.rank >= task.ranks)
    throw std::invalid_argument("DDPM_SLICE: expected 0 <= RANK < RANKS <= " + std::to_string(kMaxLocalRanks) +
                                " (got '" + s + "')");
  const char* out = std::getenv("DDPM_SLICE_OUT");
  if (!out || !*out) throw std::invalid_argument("DDPM_SLICE_OUT: not set (the rank's output file)");
  task.out = out;
  return task;
}

RuntimeOptions rank_runtime(RuntimeOptions runtime) {
  if (runtime.threads == 0) runtime.threads = 1;
  if (runtime.log_level == "info") runtime.log_level = "warn";
  return runtime;
}

SliceWriter::SliceWriter(std::string out, int64_t count, int64_t bytes_per_image)
    : out_(std::move(out)), count_(count), bytes_(bytes_per_image) {
  file_.open(out_ + ".part", std::ios::binary | std::ios::trunc);
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.count = static_cast<uint64_t>(count_);
  h.bytes_per_image = static_cast<uint64_t>(bytes_);
  file_.write(reinterpret_cast<const char*>(&h), sizeof h);
  if (!file_) throw std::runtime_error("'" + out_ + ".part': cannot write");
}

void SliceWriter::append(const uint8_t* image) {
  if (written_ == count_) throw std::logic_error("SliceWriter: more images than the slice holds");
  file_.write(reinterpret_cast<const char*>(image), static_cast<std::streamsize>(bytes_));
  if (!file_) throw std::runtime_error("'" + out_ + ".part': cannot write");
  ++written_;
}

void SliceWriter::commit() {
  if (written_ != count_)
    throw std::logic_error("SliceWriter: " + std::to_string(written_) + " of " + std::to_string(count_) + " images");
  file_.close();
  if (!file_) throw std::runtime_error("'" + out_ + ".part': cannot write");
  std::error_code ec;
  fs::rename(out_ + ".part", out_, ec);
  if (ec) throw std::runtime_error("'" + out_ + "': cannot rename into place: " + ec.message());
}

LocalSlices::LocalSlices(int nproc, int argc, char** argv, int64_t n, int64_t bytes_per_image)
    : n_(n), bytes_(bytes_per_image), ranks_(static_cast<int>(std::min<int64_t>(nproc, n))) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/ddpm-slices-XXXXXX";
  if (!::mkdtemp(pattern.data()))
    throw std::runtime_error("--nproc-per-node: cannot make a directory '" + pattern + "': " + std::strerror(errno));
  dir_ = pattern;
  spdlog::info("--nproc-per-node {}: {} images on {} local ranks", nproc, n, ranks_);
  const std::string ranks = std::to_string(ranks_);
  RankExit failed;
  try {
    failed = spawn_local_ranks(ranks_, args_without_nproc(argc, argv), [&](int r) {
      return std::vector<std::string>{"DDPM_SLICE=" + std::to_string(r) + "/" + ranks, "DDPM_SLICE_OUT=" + file(r)};
    }, /*stop_on_failure=*/true);
  } catch (...) {
    fs::remove_all(dir_);
    throw;
  }
  try {
    if (failed.code != 0) throw ExitError(failed.code, "--nproc-per-node: " + failed.describe());
    // The files are ours, but a rank that exits 0 without its whole slice must not pass.
    for (int r = 0; r < ranks_; ++r) {
      const Slice s = slice_of(r, ranks_, n_);
      const std::string path = file(r);
      std::error_code ec;
      const auto size = fs::file_size(path, ec);
      Header h{};
      std::ifstream in(path, std::ios::binary);
      in.read(reinterpret_cast<char*>(&h), sizeof h);
      if (ec || !in || std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || h.count != static_cast<uint64_t>(s.count) ||
          h.bytes_per_image != static_cast<uint64_t>(bytes_) ||
          size != static_cast<uint64_t>(kHeaderBytes + s.count * bytes_))
        throw std::runtime_error("--nproc-per-node: rank " + std::to_string(r) + " left no complete slice in '" +
                                 path + "' (expected " + std::to_string(s.count) + " images of " +
                                 std::to_string(bytes_) + " bytes)");
    }
  } catch (...) {
    fs::remove_all(dir_);
    throw;
  }
}

LocalSlices::~LocalSlices() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string LocalSlices::file(int rank) const { return dir_ + "/rank-" + std::to_string(rank) + ".bin"; }

void LocalSlices::read(int64_t first, int64_t count, uint8_t* out) const {
  if (first < 0 || count < 0 || first + count > n_) throw std::logic_error("LocalSlices::read: out of range");
  for (int r = 0; r < ranks_ && count > 0; ++r) {
    const Slice s = slice_of(r, ranks_, n_);
    if (first >= s.first + s.count) continue;
    const int64_t take = std::min(count, s.first + s.count - first);
    std::ifstream in(file(r), std::ios::binary);
    in.seekg(kHeaderBytes + (first - s.first) * bytes_);
    in.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(take * bytes_));
    if (!in) throw std::runtime_error("'" + file(r) + "': cannot read");
    out += take * bytes_;
    first += take;
    count -= take;
  }
}

}  // namespace ddpm::cli
