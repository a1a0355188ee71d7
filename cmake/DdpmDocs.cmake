# The API reference of the public headers: `cmake --build build --target docs` writes
# build/docs/api/html/index.html (Doxygen; Debian's doxygen package). Without Doxygen there is
# no docs target, and the ctest api_docs_complete says it skipped.
find_package(Doxygen QUIET)
if(DOXYGEN_FOUND)
  set(DDPM_DOCS_OUTPUT_DIR ${PROJECT_BINARY_DIR}/docs/api)
  set(DDPM_DOCS_WARN_LOG ${PROJECT_BINARY_DIR}/docs/api/warnings.log)
  set(DDPM_DOXYFILE ${PROJECT_BINARY_DIR}/docs/Doxyfile)
  configure_file(${PROJECT_SOURCE_DIR}/docs/Doxyfile.in ${DDPM_DOXYFILE} @ONLY)
  add_custom_target(docs
    COMMAND ${CMAKE_COMMAND} -E make_directory ${DDPM_DOCS_OUTPUT_DIR}
    COMMAND Doxygen::doxygen ${DDPM_DOXYFILE}
    COMMAND ${CMAKE_COMMAND} -E echo "API reference: ${DDPM_DOCS_OUTPUT_DIR}/html/index.html"
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    COMMENT "Doxygen: the API reference of include/ddpm/"
    VERBATIM)
else()
  message(STATUS "ddpm: no doxygen; no docs target (the API reference)")
endif()
