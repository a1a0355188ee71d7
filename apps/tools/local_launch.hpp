#pragma once
// ddpm-train --nproc-per-node N: starts N local ranks of this program with torchrun's
// environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, a free
// MASTER_PORT), waits for them, forwards SIGINT/SIGTERM, and returns the first failing exit code.

namespace ddpm::cli {

/// `argv` without the --nproc-per-node option is what each rank runs.
int run_local_ranks(int nproc, int argc, char** argv);

}  // namespace ddpm::cli
