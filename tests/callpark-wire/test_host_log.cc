// The call-park module's Host::log formats a line only when the host would write it (ABI 1.6 log_enabled), and an
// older host without log_enabled still gets every line.
#include "host.hh"

#include <parkway/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <string>

namespace {

// An argument that counts how often fmt formats it.
struct CountedArg {
    int *formats;
};

} // namespace

template <> struct fmt::formatter<CountedArg> : fmt::formatter<std::string_view> {
    template <typename Ctx> auto format(const CountedArg &a, Ctx &ctx) const {
        ++*a.formats;
        return fmt::formatter<std::string_view>::format("counted", ctx);
    }
};

TEST_CASE("Host::log formats nothing below the host's log level and everything at or above it", "[host][log]") {
    parkway::testing::FakeHost fake;
    fake.logLevel = PW_LOG_WARN;
    parkway::callpark::Host host(fake.api(), fake.raw());
    int formats = 0;
    host.log(PW_LOG_INFO, "parked {} on {}", CountedArg{&formats}, 101);
    host.log(PW_LOG_DEBUG, "detail {}", CountedArg{&formats});
    CHECK(formats == 0);
    CHECK(fake.logs.empty());
    CHECK(fake.logEnabledCalls == 2);
    host.log(PW_LOG_WARN, "saving {} failed", CountedArg{&formats});
    host.log(PW_LOG_ERROR, "broken {}", CountedArg{&formats});
    CHECK(formats == 2);
    REQUIRE(fake.logs.size() == 2);
    CHECK(fake.logs[0] == "saving counted failed");
    CHECK(fake.logs[1] == "broken counted");
}

TEST_CASE("Host::log on a v1.5 host (no log_enabled) formats and logs every line", "[host][log]") {
    parkway::testing::FakeHost fake;
    fake.limitTo(offsetof(pw_host_api, log_enabled));
    parkway::callpark::Host host(fake.api(), fake.raw());
    REQUIRE_FALSE(PW_HOST_HAS(fake.api(), log_enabled));
    int formats = 0;
    host.log(PW_LOG_INFO, "parked {}", CountedArg{&formats});
    CHECK(formats == 1);
    REQUIRE(fake.logs.size() == 1);
    CHECK(fake.logs[0] == "parked counted");
}
