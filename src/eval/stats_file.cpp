#include "ddpm/eval/stats_file.hpp"

#include <ATen/ATen.h>

#include <stdexcept>

#include "ddpm/io/read_file.hpp"
#include "ddpm/util/limits.hpp"
#include "io/npy.hpp"
#include "io/zip.hpp"

namespace ddpm::eval {
namespace {

constexpr uint64_t kMaxMemberBytes = limits::kMaxZipMemberBytes;

// The member "<name>.npy" (np.savez's naming; a bare "<name>" is accepted too).
const io::ZipEntry* member(const io::ZipReader& zip, const std::string& name) {
  const io::ZipEntry* m = zip.find(name + ".npy");
  return m ? m : zip.find(name);
}

}  // namespace

FeatureStats read_stats_npz(const std::string& path) {
  const std::string what = "statistics file '" + path + "'";
  const std::string archive = io::read_regular_file(path, "statistics file", limits::kMaxStatsFileBytes);
  const io::ZipReader zip(archive, what);
  FeatureStats stats;
  for (const char* name : {"mu", "sigma"}) {
    const io::ZipEntry* m = member(zip, name);
    if (!m) throw std::invalid_argument(what + ": no '" + name + "' array (not FID statistics)");
    const std::string where = what + ", " + name;
    std::vector<uint8_t> bytes = zip.read(*m, kMaxMemberBytes);
    io::NpyHeader h = io::parse_npy_header(bytes, where);
    const size_t rank = std::string(name) == "mu" ? 1 : 2;
    if (h.shape.size() != rank)
      throw std::invalid_argument(where + ": expected a " + std::to_string(rank) + "-d array, got " +
                                  std::to_string(h.shape.size()) + "-d");
    if (h.shape[0] > kMaxStatsDim)
      throw std::invalid_argument(where + ": dimension " + std::to_string(h.shape[0]) + " exceeds the limit " +
                                  std::to_string(kMaxStatsDim));
    (rank == 1 ? stats.mu : stats.sigma) = io::npy_to_double(std::move(bytes), h, where);
  }
  stats.validate(what);
  if (const io::ZipEntry* m = member(zip, "count")) {
    std::vector<uint8_t> bytes = zip.read(*m, 4096);
    io::NpyHeader h = io::parse_npy_header(bytes, what + ", count");
    at::Tensor c = io::npy_to_double(bytes, h, what + ", count");
    if (c.numel() != 1 || !(c.item<double>() >= 0)) throw std::invalid_argument(what + ": corrupt 'count'");
    stats.count = static_cast<int64_t>(c.item<double>());
  }
  if (const io::ZipEntry* m = member(zip, "features")) {
    std::vector<uint8_t> bytes = zip.read(*m, 65536);
    io::NpyHeader h = io::parse_npy_header(bytes, what + ", features");
    if (h.kind != 'S' || !h.shape.empty()) throw std::invalid_argument(what + ": 'features' is not a bytes scalar");
    stats.features.assign(reinterpret_cast<const char*>(bytes.data() + h.data_offset), bytes.size() - h.data_offset);
    stats.features.erase(stats.features.find_last_not_of('\0') + 1);  // numpy pads |S with NULs
  }
  return stats;
}

void write_stats_npz(const std::string& path, const FeatureStats& stats) {
  stats.validate("statistics for '" + path + "'");
  std::vector<std::pair<std::string, std::vector<uint8_t>>> members = {
      {"mu.npy", io::npy_from_double(stats.mu)}, {"sigma.npy", io::npy_from_double(stats.sigma)}};
  if (stats.count > 0) members.emplace_back("count.npy", io::npy_int64_scalar(stats.count));
  if (!stats.features.empty()) members.emplace_back("features.npy", io::npy_bytes_scalar(stats.features));
  io::write_zip_stored(path, members);
}

}  // namespace ddpm::eval
