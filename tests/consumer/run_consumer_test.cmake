# Installs the build tree into WORK_DIR/prefix, builds tests/consumer against it, runs it.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc WORKING_DIRECTORY ${WORK_DIR})
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
# LibTorch's own prefix too: its TorchConfig would otherwise take a system libtorch.so. Passed
# through the environment (':'-separated): a ';' inside one argument would be split by run().
run(${CMAKE_COMMAND} -E env "CMAKE_PREFIX_PATH=${WORK_DIR}/prefix:${TORCH_PREFIX}"
    ${CMAKE_COMMAND} -S ${CONSUMER_SRC} -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release "-DTorch_DIR=${TORCH_DIR}")
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer)
if(NOT EXISTS ${WORK_DIR}/consumer-grid.png)
  message(FATAL_ERROR "the consumer wrote no consumer-grid.png")
endif()
