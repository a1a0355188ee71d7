# Checks the LibTorch that find_package(Torch) found and sets up its CUDA side.
# Included from the top CMakeLists.txt right after find_package(Torch); directory-wide
# settings here reach every target (library, tools, tests).
#
#   DDPM_CUDA  AUTO (default): the CUDA code paths when LibTorch has CUDA;
#              ON: require them (error on a CPU-only LibTorch); OFF: never.
# In the CUDA build: DDPM_WITH_CUDA=1 everywhere, nccl.h on the include path
# (DDPM_WITH_NCCL=1 when found) and the imported target ddpm_nccl (headers + libnccl).

# ---------------------------------------------------------------- version: 1.13 or 2.x
set(DDPM_TORCH_VERSION "${Torch_VERSION}")
if(NOT DDPM_TORCH_VERSION)
  # Older packages without TorchConfigVersion.cmake: read torch/version.h.
  find_file(_ddpm_torch_version_h torch/version.h PATHS ${TORCH_INCLUDE_DIRS} NO_DEFAULT_PATH)
  if(_ddpm_torch_version_h)
    file(STRINGS "${_ddpm_torch_version_h}" _v REGEX "define TORCH_VERSION_(MAJOR|MINOR|PATCH) ")
    string(REGEX REPLACE ".*MAJOR ([0-9]+).*MINOR ([0-9]+).*PATCH ([0-9]+).*" "\\1.\\2.\\3" DDPM_TORCH_VERSION "${_v}")
  endif()
endif()
if(NOT DDPM_TORCH_VERSION MATCHES "^(1\\.13|2\\.[0-9]+)(\\.|$)")
  message(FATAL_ERROR "LibTorch ${DDPM_TORCH_VERSION} (${Torch_DIR}) is not supported: libddpm needs LibTorch 1.13 or 2.x")
endif()

# ---------------------------------------------------------------- headers and libraries from one LibTorch
# TorchConfig looks for libtorch.so in the system paths before its own prefix, so a pip
# torch given as -DTorch_DIR (or torch.utils.cmake_prefix_path) on a machine that also
# has Debian's libtorch.so gets 2.x headers with 1.13 libraries.
# (Debian's prefix is /usr with the library in /usr/lib/<arch>: a prefix, not equal.)
get_filename_component(_ddpm_torch_lib "${TORCH_LIBRARY}" REALPATH)
get_filename_component(_ddpm_torch_prefix "${TORCH_INSTALL_PREFIX}" REALPATH)
string(FIND "${_ddpm_torch_lib}" "${_ddpm_torch_prefix}/" _ddpm_at)
if(NOT _ddpm_at EQUAL 0)
  message(FATAL_ERROR "LibTorch mismatch: headers from ${TORCH_INSTALL_PREFIX} but ${TORCH_LIBRARY}; "
                      "configure with -DCMAKE_PREFIX_PATH=${TORCH_INSTALL_PREFIX} (the torch folder itself) in a fresh build folder")
endif()

# ---------------------------------------------------------------- fmt: the system's, not LibTorch's
# A pip LibTorch ships its own fmt headers (12.x) in its include folder; spdlog and
# libfmt.so here are the system's (Debian: 9.x). Put the system fmt first on the include
# path so that our code and spdlog compile against the fmt they link.
if(EXISTS "${TORCH_INSTALL_PREFIX}/include/fmt")
  find_package(fmt CONFIG QUIET)  # spdlog needs it anyway
  if(TARGET fmt::fmt AND NOT DDPM_SYSTEM_FMT_INCLUDE_DIR)
    get_target_property(_ddpm_fmt_inc fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
    list(GET _ddpm_fmt_inc 0 _ddpm_fmt_inc)
    if(EXISTS "${_ddpm_fmt_inc}/fmt/format.h")
      set(DDPM_SYSTEM_FMT_INCLUDE_DIR "${_ddpm_fmt_inc}" CACHE PATH "the fmt headers spdlog was built with")
    endif()
  endif()
  find_path(DDPM_SYSTEM_FMT_INCLUDE_DIR fmt/format.h
    PATHS ${CMAKE_SYSTEM_INCLUDE_PATH} /usr/include /usr/local/include
    NO_CMAKE_PATH NO_CMAKE_ENVIRONMENT_PATH)
  if(DDPM_SYSTEM_FMT_INCLUDE_DIR AND NOT DDPM_SYSTEM_FMT_INCLUDE_DIR STREQUAL "${TORCH_INSTALL_PREFIX}/include")
    set(_ddpm_fmt_shim "${CMAKE_BINARY_DIR}/ddpm-system-fmt")
    file(MAKE_DIRECTORY "${_ddpm_fmt_shim}")
    if(NOT EXISTS "${_ddpm_fmt_shim}/fmt")
      file(CREATE_LINK "${DDPM_SYSTEM_FMT_INCLUDE_DIR}/fmt" "${_ddpm_fmt_shim}/fmt" SYMBOLIC)
    endif()
    include_directories(BEFORE "${_ddpm_fmt_shim}")
  endif()
endif()

# ---------------------------------------------------------------- pip LibTorch: link against its own CUDA libraries
# A pip torch finds libnccl, libcudart, ... in site-packages/nvidia/*/lib through its
# RUNPATH. At link time, though, a CUDA toolkit's older copies (/usr/local/cuda/lib)
# would satisfy those dependencies first (NCCL 2.30 symbols then go missing), and the
# toolkit's libcudart would be loaded in place of the wheel's. So: resolve them in the
# wheel's folders (-rpath-link), and record only the libraries we call (--as-needed).
get_filename_component(_ddpm_site "${TORCH_INSTALL_PREFIX}/.." ABSOLUTE)
file(GLOB _ddpm_wheel_libs LIST_DIRECTORIES true "${_ddpm_site}/nvidia/*/lib")
if(_ddpm_wheel_libs AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang" AND NOT APPLE)
  add_link_options(LINKER:--as-needed)
  foreach(_d "${TORCH_INSTALL_PREFIX}/lib" ${_ddpm_wheel_libs})
    add_link_options(LINKER:-rpath-link,${_d})
  endforeach()
endif()

# ---------------------------------------------------------------- CUDA
set(DDPM_CUDA AUTO CACHE STRING "CUDA code paths: AUTO (when LibTorch has CUDA), ON (required) or OFF")
set_property(CACHE DDPM_CUDA PROPERTY STRINGS AUTO ON OFF)
set(DDPM_TORCH_HAS_CUDA OFF)
if(CAFFE2_USE_CUDA OR C10_CUDA_LIBRARY)
  set(DDPM_TORCH_HAS_CUDA ON)
endif()
string(TOUPPER "${DDPM_CUDA}" _ddpm_cuda)
if(_ddpm_cuda STREQUAL "ON" AND NOT DDPM_TORCH_HAS_CUDA)
  message(FATAL_ERROR "DDPM_CUDA=ON: LibTorch ${DDPM_TORCH_VERSION} at ${TORCH_INSTALL_PREFIX} is CPU-only "
                      "(use a CUDA LibTorch, e.g. scripts/build.sh --torch2, or -DDDPM_CUDA=OFF)")
endif()
set(DDPM_WITH_CUDA OFF)
if(DDPM_TORCH_HAS_CUDA AND NOT _ddpm_cuda STREQUAL "OFF")
  set(DDPM_WITH_CUDA ON)
endif()

if(DDPM_WITH_CUDA)
  add_compile_definitions(DDPM_WITH_CUDA=1)
  # NCCL for the data-parallel work: the pip wheel's (the one LibTorch runs with) first,
  # then the CUDA toolkit's.
  find_path(NCCL_INCLUDE_DIR nccl.h
    HINTS ${_ddpm_site}/nvidia/nccl/include ${CUDAToolkit_INCLUDE_DIRS} ${CUDA_TOOLKIT_ROOT_DIR}/include
    )
  find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2
    HINTS ${_ddpm_site}/nvidia/nccl/lib ${CUDAToolkit_LIBRARY_DIR} ${CUDA_TOOLKIT_ROOT_DIR}/lib64
    )
  if(NCCL_INCLUDE_DIR)
    add_compile_definitions(DDPM_WITH_NCCL=1)
    include_directories(SYSTEM ${NCCL_INCLUDE_DIR})
    if(NOT TARGET ddpm_nccl)
      add_library(ddpm_nccl INTERFACE IMPORTED)
      set_target_properties(ddpm_nccl PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${NCCL_INCLUDE_DIR}")
      if(NCCL_LIBRARY)
        set_target_properties(ddpm_nccl PROPERTIES INTERFACE_LINK_LIBRARIES "${NCCL_LIBRARY}")
      endif()
    endif()
  endif()
  message(STATUS "libddpm: LibTorch ${DDPM_TORCH_VERSION} with CUDA (${TORCH_INSTALL_PREFIX}); "
                 "DDPM_WITH_CUDA=1; NCCL: ${NCCL_INCLUDE_DIR}")
else()
  message(STATUS "libddpm: LibTorch ${DDPM_TORCH_VERSION} (${TORCH_INSTALL_PREFIX}), CPU code paths only")
endif()
