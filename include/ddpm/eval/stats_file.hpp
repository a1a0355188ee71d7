#pragma once
// Reference statistics on disk, in the .npz layout pytorch-fid, clean-fid and NVIDIA's EDM
// use: a zip of NumPy arrays `mu` (float64 [D]) and `sigma` (float64 [D, D]). np.load reads
// what write_stats_npz writes; read_stats_npz reads files written by np.savez (stored) and
// np.savez_compressed (deflate), so published reference statistics can be used.
// libddpm adds two optional members that other tools ignore: `count` (int64 scalar, the
// number of images) and `features` (a bytes scalar naming the feature network).
#include <string>

#include "ddpm/eval/stats.hpp"

namespace ddpm::eval {

/// Largest D accepted when reading: sigma is then 2 GiB (the members' size limit).
inline constexpr int64_t kMaxStatsDim = 16383;

/// Throws std::invalid_argument with one line naming the file for anything wrong: not a
/// zip, a truncated or corrupt member, CRC mismatch, missing mu/sigma, wrong shapes, a dtype
/// other than float/int, D > kMaxStatsDim, NaN. float32 arrays are widened to float64.
FeatureStats read_stats_npz(const std::string& path);

/// Writes `path` atomically (via "<path>.tmp"). Throws std::invalid_argument if the
/// statistics are malformed, std::runtime_error if the file cannot be written.
void write_stats_npz(const std::string& path, const FeatureStats& stats);

}  // namespace ddpm::eval
