#include "tools/tools.hpp"

int main(int argc, char** argv) { return ddpm::cli::schedule_main(argc, argv); }
