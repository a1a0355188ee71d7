#pragma once
// Entry points of the command-line tools. They live in the library so the
// executables are one-line mains; each returns the process exit code
// (0 success, 1 runtime failure, 2 bad input).

namespace ddpm::cli {
int train_main(int argc, char** argv);
int distill_main(int argc, char** argv);  ///< ddpm-distill (progressive distillation)
int sample_main(int argc, char** argv);
int schedule_main(int argc, char** argv);
int bench_main(int argc, char** argv);
int convert_main(int argc, char** argv);  ///< ddpm-convert (pretrained weights in, diffusers out)
int eval_main(int argc, char** argv);
}  // namespace ddpm::cli
