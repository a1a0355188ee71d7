#include "ddpm/dist/launch.hpp"

#include <charconv>
#include <cstdlib>
#include <string>

#include "ddpm/util/errors.hpp"
#include "util/enum_names.hpp"

namespace ddpm::dist {
namespace {

int64_t parse_int(const char* name, const char* text, int64_t min, int64_t max) {
  const std::string s = text;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty())
    bad_input(name, "expected an integer, got '" + s + "'");
  if (v < min || v > max)
    bad_input(name, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + s);
  return v;
}

bool truthy(const char* text) {
  const std::string s = text == nullptr ? "" : text;
  return s == "1" || s == "True" || s == "true" || s == "TRUE" || s == "yes";
}

// SLURM_NTASKS_PER_NODE: "4", "4(x3)" or "2(x2),1": the count of the first node.
int64_t first_count(const char* name, const char* text) {
  std::string s = text;
  const auto cut = s.find_first_of("(,");
  if (cut != std::string::npos) s.resize(cut);
  return parse_int(name, s.c_str(), 1, 1 << 20);
}

}  // namespace

namespace {
// Printed only (the launcher is detected from the environment, never parsed).
constexpr util::EnumName<Launcher> kLaunchers[] = {
    {Launcher::Single, "single process"}, {Launcher::Torchrun, "torchrun"}, {Launcher::Slurm, "slurm"}};
}  // namespace

std::string to_string(Launcher launcher) { return util::enum_name(kLaunchers, launcher); }

std::string first_host_of_nodelist(const std::string& nodelist) {
  if (nodelist.empty()) bad_input("SLURM_JOB_NODELIST", "empty");
  // The first entry ends at the first comma outside brackets.
  size_t end = 0;
  int depth = 0;
  for (; end < nodelist.size(); ++end) {
    const char c = nodelist[end];
    if (c == '[') ++depth;
    if (c == ']' && --depth < 0) break;
    if (c == ',' && depth == 0) break;
  }
  if (depth != 0) bad_input("SLURM_JOB_NODELIST", "unbalanced brackets in '" + nodelist + "'");
  const std::string first = nodelist.substr(0, end);
  const auto open = first.find('[');
  if (open == std::string::npos) return first;
  const auto close = first.find(']', open);
  if (close == std::string::npos || close != first.size() - 1 || open == 0)
    bad_input("SLURM_JOB_NODELIST", "cannot read '" + nodelist + "'");
  // "gpu[07-09,12]" → prefix "gpu", first range "07-09" → "07" (leading zeros kept).
  std::string range = first.substr(open + 1, close - open - 1);
  range = range.substr(0, range.find_first_of(",-"));
  if (range.empty() || range.find_first_not_of("0123456789") != std::string::npos)
    bad_input("SLURM_JOB_NODELIST", "cannot read '" + nodelist + "'");
  return first.substr(0, open) + range;
}

LaunchInfo launch_from_environment(const EnvLookup& lookup) {
  const EnvLookup env = lookup ? lookup : EnvLookup([](const char* n) -> const char* { return std::getenv(n); });
  LaunchInfo info;
  constexpr int64_t kMaxWorld = 1 << 20;
  if (env("RANK") != nullptr || env("WORLD_SIZE") != nullptr) {
    if (env("RANK") == nullptr || env("WORLD_SIZE") == nullptr)
      bad_input(env("RANK") ? "WORLD_SIZE" : "RANK", "unset while " + std::string(env("RANK") ? "RANK" : "WORLD_SIZE") +
                                                      " is set (torchrun sets both)");
    info.launcher = Launcher::Torchrun;
    info.world_size = parse_int("WORLD_SIZE", env("WORLD_SIZE"), 1, kMaxWorld);
    info.rank = parse_int("RANK", env("RANK"), 0, info.world_size - 1);
    info.local_rank = env("LOCAL_RANK") ? parse_int("LOCAL_RANK", env("LOCAL_RANK"), 0, kMaxWorld) : info.rank;
    info.local_world_size = env("LOCAL_WORLD_SIZE")
                                ? parse_int("LOCAL_WORLD_SIZE", env("LOCAL_WORLD_SIZE"), 1, kMaxWorld)
                                : info.world_size;
    if (info.world_size > 1) {
      if (env("MASTER_ADDR") == nullptr || !*env("MASTER_ADDR"))
        bad_input("MASTER_ADDR", "unset (torchrun sets it; set it by hand when launching ranks yourself)");
      if (env("MASTER_PORT") == nullptr) bad_input("MASTER_PORT", "unset");
    }
    info.restart_count =
        env("TORCHELASTIC_RESTART_COUNT") ? parse_int("TORCHELASTIC_RESTART_COUNT", env("TORCHELASTIC_RESTART_COUNT"), 0, 1 << 30) : 0;
    info.agent_store = truthy(env("TORCHELASTIC_USE_AGENT_STORE"));
  } else if (env("SLURM_PROCID") != nullptr && env("SLURM_NTASKS") != nullptr) {
    info.launcher = Launcher::Slurm;
    info.world_size = parse_int("SLURM_NTASKS", env("SLURM_NTASKS"), 1, kMaxWorld);
    info.rank = parse_int("SLURM_PROCID", env("SLURM_PROCID"), 0, info.world_size - 1);
    info.local_rank = env("SLURM_LOCALID") ? parse_int("SLURM_LOCALID", env("SLURM_LOCALID"), 0, kMaxWorld) : 0;
    info.local_world_size =
        env("SLURM_NTASKS_PER_NODE") ? first_count("SLURM_NTASKS_PER_NODE", env("SLURM_NTASKS_PER_NODE")) : 1;
    if (info.world_size > 1) {
      if (env("MASTER_ADDR") && *env("MASTER_ADDR")) {
        info.master_addr = env("MASTER_ADDR");
      } else {
        const char* list = env("SLURM_JOB_NODELIST") ? env("SLURM_JOB_NODELIST") : env("SLURM_NODELIST");
        if (list == nullptr) bad_input("SLURM_JOB_NODELIST", "unset, and no MASTER_ADDR");
        info.master_addr = first_host_of_nodelist(list);
      }
    }
    // Without MASTER_PORT every job picks a port from its id, so jobs sharing a node differ.
    if (!env("MASTER_PORT") && env("SLURM_JOB_ID"))
      info.master_port = 20000 + static_cast<int>(parse_int("SLURM_JOB_ID", env("SLURM_JOB_ID"), 0, INT64_MAX / 2) % 20000);
  }
  if (info.launcher != Launcher::Single) {
    if (env("MASTER_ADDR") && *env("MASTER_ADDR")) info.master_addr = env("MASTER_ADDR");
    if (env("MASTER_PORT")) info.master_port = static_cast<int>(parse_int("MASTER_PORT", env("MASTER_PORT"), 1, 65535));
  }
  if (info.local_rank >= info.local_world_size)
    bad_input("LOCAL_RANK", std::to_string(info.local_rank) + " is not below the local world size " +
                                std::to_string(info.local_world_size));
  return info;
}

}  // namespace ddpm::dist
