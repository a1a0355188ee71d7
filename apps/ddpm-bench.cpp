#include "tools/tools.hpp"

int main(int argc, char** argv) { return ddpm::cli::bench_main(argc, argv); }
