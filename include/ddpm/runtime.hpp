#pragma once
// Runtime set-up shared by the library and every tool: devices and threads.
#include <c10/core/Device.h>

#include <string>

namespace ddpm {

/// Parses "auto" | "cpu" | "cuda" | "cuda:N". "auto" is CUDA when available.
/// Throws std::invalid_argument naming the text when it is not one of those,
/// or when CUDA is asked for and not available.
c10::Device parse_device(const std::string& text);

/// Sets LibTorch's intra-op thread count; n <= 0 means all cores.
/// (LibTorch starts at one thread on some machines, so the tools always call this.)
void set_threads(int n);

}  // namespace ddpm
