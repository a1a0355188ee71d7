#pragma once
// CPU runtime settings that LibTorch does not make itself. Two are read from the
// environment once, when the OpenMP and OpenBLAS libraries load (before main), so the
// only way for a program to choose them is to set them and re-execute itself.
#include <string>

namespace ddpm::cli {

/// If OMP_WAIT_POLICY is unset, sets it to PASSIVE: OpenMP threads that wait at a
/// barrier sleep instead of spinning. On a CPU shared with other work, spinning threads
/// hold the cores the descheduled sibling needs, and every parallel region waits a
/// scheduler tick (measured here: training 4× slower at 2 threads under load ~6).
/// If OPENBLAS_CORETYPE is unset, OpenBLAS is loaded, picked a pre-AVX-512 kernel set
/// (Haswell, Zen, Sandybridge) and the CPU has AVX-512 F/CD/BW/DQ/VL (e.g. AMD Zen 4/5,
/// which OpenBLAS 0.3.21 does not know), sets it to SKYLAKEX (GEMM 1.7× faster here).
/// Then re-executes the program once with the same arguments. Does nothing when
/// DDPM_NO_ENV_TUNING is set, or when nothing needs changing. Call first thing in main.
void tune_cpu_environment(char** argv);

/// OpenBLAS (when loaded) keeps its own thread pool sized to all cores, whatever
/// at::set_num_threads says; give it the same count.
void match_blas_threads(int threads);

/// The OpenBLAS kernel set in use ("" when OpenBLAS is not loaded).
std::string blas_core_name();

}  // namespace ddpm::cli
