# CPack pre-build script (cpack.cmake): the package's static engine keeps its symbols but not its debug
# information (CPACK_STRIP_FILES strips executables and shared objects only). Saves ~20 MB.
file(GLOB_RECURSE archives "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*.a")
foreach(a ${archives})
  execute_process(COMMAND "${CPACK_PARKWAY_STRIP}" --strip-debug "${a}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "strip --strip-debug ${a} failed (${rc})")
  endif()
endforeach()
