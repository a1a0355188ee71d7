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

/// What started this process: a plain process, torchrun, or SLURM (srun).
enum class Launcher { Single, Torchrun, Slurm };
/// "single", "torchrun" or "slurm".
std::string to_string(Launcher launcher);

/// This process's place in a data-parallel job, as the launcher's environment describes it.
struct LaunchInfo {
  /// Who launched the job.
  Launcher launcher = Launcher::Single;
  /// This process's rank in [0, world_size) (RANK, SLURM_PROCID).
  int64_t rank = 0;
  /// The number of ranks (WORLD_SIZE, SLURM_NTASKS).
  int64_t world_size = 1;
  /// The rank on this machine (LOCAL_RANK, SLURM_LOCALID).
  int64_t local_rank = 0;
  /// The number of ranks on this machine (LOCAL_WORLD_SIZE).
  int64_t local_world_size = 1;
  /// The rendezvous host (MASTER_ADDR, or the first host of SLURM_JOB_NODELIST).
  std::string master_addr = "127.0.0.1";
  /// The rendezvous port (MASTER_PORT, or derived from SLURM_JOB_ID).
  int master_port = 29500;
  int64_t restart_count = 0;  ///< TORCHELASTIC_RESTART_COUNT: > 0 after an elastic restart
  /// TORCHELASTIC_USE_AGENT_STORE: the elastic agent already serves the TCPStore at
  /// MASTER_ADDR:MASTER_PORT, so every rank, rank 0 too, connects to it as a client.
  bool agent_store = false;

  /// Whether there is more than one rank.
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
