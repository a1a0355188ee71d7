#pragma once
// Where this process sits in a data-parallel job, read from the launcher's environment:
// torchrun / torch.distributed.elastic (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT, TORCHELASTIC_RESTART_COUNT, TORCHELASTIC_USE_AGENT_STORE) or
// SLURM's srun (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE, the
// master being MASTER_ADDR or the first host of SLURM_JOB_NODELIST). A plain process is
// world size 1 and needs none of it.
#include <cstdint>
#include <functional>
#include <string>

namespace ddpm::dist {

enum class Launcher { Single, Torchrun, Slurm };
std::string to_string(Launcher launcher);

struct LaunchInfo {
  Launcher launcher = Launcher::Single;
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  int64_t local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int64_t restart_count = 0;  ///< TORCHELASTIC_RESTART_COUNT: > 0 after an elastic restart
  /// TORCHELASTIC_USE_AGENT_STORE: the elastic agent already serves the TCPStore at
  /// MASTER_ADDR:MASTER_PORT, so every rank, rank 0 too, connects to it as a client.
  bool agent_store = false;

  bool distributed() const { return world_size > 1; }
};

/// Reads one environment variable (nullptr when unset); getenv by default, a map in tests.
using EnvLookup = std::function<const char*(const char* name)>;

/// The launch described by the environment. Throws std::invalid_argument naming the variable
/// for malformed values (RANK=x, RANK >= WORLD_SIZE, a missing MASTER_ADDR under torchrun, ...).
LaunchInfo launch_from_environment(const EnvLookup& env = nullptr);

/// The first host of a SLURM node list: "gpu[07-09,12],cpu3" → "gpu07", "a,b" → "a".
/// Throws std::invalid_argument for a malformed list.
std::string first_host_of_nodelist(const std::string& nodelist);

}  // namespace ddpm::dist
