#include "tools/tools.hpp"

int main(int argc, char** argv) { return ddpm::cli::convert_main(argc, argv); }
