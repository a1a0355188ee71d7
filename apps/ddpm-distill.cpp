#include "tools/tools.hpp"

int main(int argc, char** argv) { return ddpm::cli::distill_main(argc, argv); }
