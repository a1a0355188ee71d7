#pragma once
namespace ddpm::tools {
/// ddpm-convert: pretrained weights (original DDPM layout, diffusers) → libddpm checkpoint,
/// and libddpm → diffusers. Exit 0, 2 for bad input (one line on stderr), 1 otherwise.
int convert_main(int argc, char** argv);
}  // namespace ddpm::tools
