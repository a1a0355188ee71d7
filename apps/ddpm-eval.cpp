#include "tools/tools.hpp"

int main(int argc, char** argv) { return ddpm::cli::eval_main(argc, argv); }
