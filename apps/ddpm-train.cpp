#include "tools/tools.hpp"

int main(int argc, char** argv) { return ddpm::cli::train_main(argc, argv); }
