// The owner of the test executables' precompiled header (cmake/ParkwayTestBuild.cmake); never run.
#include <catch2/catch.hpp>

TEST_CASE("precompiled header owner") {
    REQUIRE(true);
}
