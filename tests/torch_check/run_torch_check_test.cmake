# Configures tests/torch_check with the build's LibTorch in several ways and checks that
# cmake/DdpmTorch.cmake accepts it, and refuses with its one-line message: an unsupported
# version, headers and libraries from two LibTorch installs, DDPM_CUDA=ON on a CPU-only one.
# -D: SRC (tests/torch_check), WORK_DIR, DDPM_SOURCE_DIR, TORCH_DIR, TORCH_PREFIX, HAS_CUDA.
set(n 0)
function(configure expect_ok expect_regex)
  math(EXPR k "${n} + 1")
  set(n ${k} PARENT_SCOPE)
  file(REMOVE_RECURSE ${WORK_DIR}/${k})
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${WORK_DIR}/${k} -DDDPM_SOURCE_DIR=${DDPM_SOURCE_DIR}
                          "-DCMAKE_PREFIX_PATH=${TORCH_PREFIX}" "-DTorch_DIR=${TORCH_DIR}" ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(REGEX REPLACE "[ \n]+" " " text "${out} ${err}")  # CMake wraps long messages
  if(expect_ok AND NOT rc EQUAL 0)
    message(FATAL_ERROR "configure ${ARGN}: expected success, got ${rc}:\n${err}")
  elseif(NOT expect_ok AND rc EQUAL 0)
    message(FATAL_ERROR "configure ${ARGN}: expected an error, it succeeded")
  endif()
  if(NOT text MATCHES "${expect_regex}")
    message(FATAL_ERROR "configure ${ARGN}: output does not match '${expect_regex}':\n${out}\n${err}")
  endif()
  message(STATUS "ok: ${ARGN} -> ${CMAKE_MATCH_0}")
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
configure(FALSE "LibTorch mismatch: headers from .* but /elsewhere/lib/libtorch\\.so"
          -DFAKE_TORCH_LIBRARY=/elsewhere/lib/libtorch.so)
if(HAS_CUDA)
  # Each configure of a CUDA LibTorch detects the CUDA toolkit (~30 s on 2 cores): the
  # version checks, which do not depend on CUDA, run in the 1.13 build's test.
  configure(TRUE "libddpm: LibTorch 2\\.[0-9.]+ with CUDA.*DDPM_WITH_CUDA=ON")
  configure(TRUE "CPU code paths only.*DDPM_WITH_CUDA=OFF" -DDDPM_CUDA=OFF)
else()
  configure(TRUE "libddpm: LibTorch (1\\.13|2\\.[0-9]+)[.0-9]*.*DDPM_WITH_CUDA=OFF")
  configure(FALSE "LibTorch 1\\.12\\.1 .* is not supported: libddpm needs LibTorch 1\\.13 or 2\\.x" -DFAKE_TORCH_VERSION=1.12.1)
  configure(FALSE "LibTorch 3\\.0\\.0 .* is not supported" -DFAKE_TORCH_VERSION=3.0.0)
  configure(FALSE "DDPM_CUDA=ON: LibTorch [.0-9]+ at .* is CPU-only" -DDDPM_CUDA=ON)
endif()
file(REMOVE_RECURSE ${WORK_DIR})
