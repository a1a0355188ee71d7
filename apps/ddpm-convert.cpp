#include "tools/convert.hpp"

int main(int argc, char** argv) { return ddpm::tools::convert_main(argc, argv); }
