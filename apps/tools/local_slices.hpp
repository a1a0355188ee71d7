#pragma once
// ddpm-sample / ddpm-eval --nproc-per-node N: N local ranks of the same command each draw a
// contiguous slice of the n images (image k keeps its noise index k, so the images are those of
// one process) into a private file; the process the user started reads them back in order.
//   parent: LocalSlices slices(...)  →  starts the ranks, waits, checks their files
//   rank:   slice_task_from_environment()  →  SliceWriter  →  commit()
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>

#include "tools/common.hpp"

namespace ddpm::cli {

/// Images [first, first + count).
struct Slice {
  int64_t first = 0;
  int64_t count = 0;
};

/// Rank r's share of n images among `ranks` (ranks <= n): contiguous, in rank order, sizes
/// differing by at most one.
Slice slice_of(int rank, int ranks, int64_t n);

/// What a rank started by LocalSlices is to do (from DDPM_SLICE="r/N" and DDPM_SLICE_OUT).
struct SliceTask {
  int rank = 0;
  int ranks = 1;
  std::string out;  ///< the file to write
  Slice slice(int64_t n) const { return slice_of(rank, ranks, n); }
};

/// The task of this process; nullopt when it was not started by LocalSlices.
/// Throws std::invalid_argument for a malformed DDPM_SLICE.
std::optional<SliceTask> slice_task_from_environment();

/// A rank's runtime: one thread unless --threads says otherwise, warnings and errors only.
RuntimeOptions rank_runtime(RuntimeOptions runtime);

/// Writes a rank's images, `bytes_per_image` each, to `out`.part; commit() renames it to `out`
/// once all `count` are there, so the parent never reads a half-written slice.
class SliceWriter {
 public:
  SliceWriter(std::string out, int64_t count, int64_t bytes_per_image);
  void append(const uint8_t* image);
  void commit();

 private:
  std::string out_;
  int64_t count_, bytes_, written_ = 0;
  std::ofstream file_;
};

/// The parent: starts min(nproc, n) ranks of this program (argv without --nproc-per-node),
/// rank r to write slice_of(r, ranks, n), waits for all, and checks every file's header and
/// size. A rank that fails stops the others; the constructor then throws ExitError with that
/// rank's exit code, naming the rank. The files are removed with this object.
class LocalSlices {
 public:
  LocalSlices(int nproc, int argc, char** argv, int64_t n, int64_t bytes_per_image);
  ~LocalSlices();
  LocalSlices(const LocalSlices&) = delete;
  LocalSlices& operator=(const LocalSlices&) = delete;
  int ranks() const { return ranks_; }
  /// Images [first, first + count), bytes_per_image each, in order, into `out`.
  void read(int64_t first, int64_t count, uint8_t* out) const;

 private:
  std::string file(int rank) const;
  int64_t n_, bytes_;
  int ranks_;
  std::string dir_;
};

}  // namespace ddpm::cli
