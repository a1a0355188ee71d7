#include "tools/tools.hpp"

int main(int argc, char** argv) { return ddpm::cli::sample_main(argc, argv); }
