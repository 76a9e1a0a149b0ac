# Faster clean builds of the Catch2 test executables, without changing what is compiled or tested (CI builds the
# whole tree from scratch on two cores, and most of its compiler time went to tests that are a few hundred lines
# each but include catch.hpp, nlohmann/json, sofia and <regex>: parsing them and instantiating and optimising the
# same templates again in every file).
#
# parkway_speed_up_tests(DIR) is called once, at the end of tests/CMakeLists.txt: every executable defined under DIR
# (recursively) that links Catch2 gets
#   - a unity build (CMake's UNITY_BUILD): its sources are compiled in batches of PARKWAY_TEST_UNITY_BATCH files,
#     one compiler run per batch, so the shared headers are parsed and their templates generated once per batch;
#   - a precompiled header with catch.hpp and the standard headers the tests use, compiled once (by the small
#     parkway_test_pch target) and reused by every test executable: all are position-independent executables
#     built with the same flags. Skipped when a compiler launcher such as ccache is set (ccache does not cache
#     units that use a precompiled header unless told to; it makes rebuilds cheap anyway).
# New test executables and new test files need nothing: they are picked up here. A target whose files cannot
# share a unit (two files define the same file-scope name) opts out of unity with
#   set_target_properties(T PROPERTIES PARKWAY_NO_UNITY ON)
# and one file with set_source_files_properties(F PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON).
option(PARKWAY_TEST_UNITY "Compile the test executables in unity batches (faster clean builds)" ON)
set(PARKWAY_TEST_UNITY_BATCH 8 CACHE STRING "Source files per unity batch of a test executable")
option(PARKWAY_TEST_PCH "Precompiled catch.hpp + standard headers for the test executables" ON)

set(_parkway_pch_headers <catch2/catch.hpp> <string> <vector> <map> <memory> <functional> <optional> <atomic>
    <chrono> <cstdio> <cstdlib> <cstring> <fstream> <sstream> <stdexcept> <thread> <regex> <set>)

function(_parkway_test_pch_donor out)
  if(NOT TARGET parkway_test_pch)
    add_executable(parkway_test_pch EXCLUDE_FROM_ALL ${PROJECT_SOURCE_DIR}/cmake/test_pch.cc)
    target_link_libraries(parkway_test_pch PRIVATE Catch2::Catch2WithMain)
    parkway_warnings(parkway_test_pch)
    target_precompile_headers(parkway_test_pch PRIVATE ${_parkway_pch_headers}) # C++ only: test_pch.cc
  endif()
  set(${out} parkway_test_pch PARENT_SCOPE)
endfunction()

function(_parkway_speed_up_target target)
  get_target_property(type ${target} TYPE)
  get_target_property(libs ${target} LINK_LIBRARIES)
  if(NOT type STREQUAL "EXECUTABLE" OR NOT libs OR NOT "${libs}" MATCHES "Catch2::")
    return()
  endif()
  get_target_property(no_unity ${target} PARKWAY_NO_UNITY)
  if(PARKWAY_TEST_UNITY AND NOT no_unity)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE ${PARKWAY_TEST_UNITY_BATCH})
  endif()
  get_target_property(sources ${target} SOURCES)
  list(FILTER sources INCLUDE REGEX "\\.c$")
  if(PARKWAY_TEST_PCH AND NOT CMAKE_CXX_COMPILER_LAUNCHER AND NOT sources) # the shared header is C++ only
    _parkway_test_pch_donor(donor)
    target_precompile_headers(${target} REUSE_FROM ${donor})
  endif()
endfunction()

function(parkway_speed_up_tests dir)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t ${targets})
    _parkway_speed_up_target(${t})
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(d ${subdirs})
    parkway_speed_up_tests(${d})
  endforeach()
endfunction()
